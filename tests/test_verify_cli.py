"""`studio verify FILE`: exit 0 and the record when intact; non-zero with the reason otherwise."""
from __future__ import annotations

import io
import json
import shutil

import pytest
from gov_helpers import cli_env, textured, as_user
from PIL import Image

from brand_guard.provenance import manifest_path
from design_studio.cli import main


@pytest.fixture
def outputs(studio, settings, monkeypatch, tmp_path):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    image = studio.generate_concepts("a bamboo-handle bag", n=1, seed=3, actor=as_user(studio, "ana"))[0]
    mesh = studio.make_mesh(image.id, actor=as_user(studio, "ana"))
    out = tmp_path / "out"
    out.mkdir()
    files = {}
    for name, design in (("png", image), ("glb", mesh)):  # copies with their manifests, as a user would send them
        src = studio.store.file_path(design)
        files[name] = shutil.copyfile(src, out / f"design.{name}")
        shutil.copyfile(manifest_path(src), manifest_path(files[name]))
    return files


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_intact_png_and_glb_verify(outputs, capsys):
    for name in ("png", "glb"):
        code, out, err = run(capsys, "verify", str(outputs[name]))
        assert code == 0, err
        report = json.loads(out)
        assert report["status"] == "valid" and report["record"]["actor"] == "ana"


def test_edited_pixels_metadata_glb_and_forged_manifest_fail(outputs, capsys, tmp_path):
    png, glb = outputs["png"], outputs["glb"]
    original = png.read_bytes()

    with Image.open(io.BytesIO(original)) as im:  # one pixel changed, metadata kept
        im.load()
        info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
        for k, v in im.text.items():
            info.add_itxt(k, v)
        px = im.convert("RGB")
        px.putpixel((5, 5), tuple(255 - c for c in px.getpixel((5, 5))))
        px.save(png, pnginfo=info)
    code, _, err = run(capsys, "verify", str(png))
    assert code == 1 and "pixels differ" in err

    png.write_bytes(original.replace(b'"seed":3', b'"seed":4'))  # metadata edited (the record's seed)
    assert original.count(b'"seed":3') >= 1
    code, _, err = run(capsys, "verify", str(png))
    assert code != 0 and "tampered" in err

    png.write_bytes(original)
    manifest = json.loads(manifest_path(png).read_text())
    manifest["record"]["actor"] = "mallory"  # forged manifest, old signature
    manifest_path(png).write_text(json.dumps(manifest))
    code, _, err = run(capsys, "verify", str(png))
    assert code == 1 and "signature does not match" in err

    data = bytearray(glb.read_bytes())
    data[-8] ^= 0xFF  # a byte of the geometry buffer
    glb.write_bytes(bytes(data))
    code, _, err = run(capsys, "verify", str(glb))
    assert code == 1 and "file bytes differ" in err


def test_a_png_signed_by_another_key_needs_trust(outputs, settings, capsys, tmp_path, monkeypatch):
    other_keys = tmp_path / "other-keys"
    monkeypatch.setenv("STUDIO_KEY_DIR", str(other_keys))
    code, _, err = run(capsys, "verify", str(outputs["png"]))
    assert code == 1 and "untrusted key" in err
    monkeypatch.setenv("STUDIO_KEY_DIR", str(settings.key_dir))
    code, key, _ = run(capsys, "public-key")
    trust = tmp_path / "house.pub"
    trust.write_text(key)
    monkeypatch.setenv("STUDIO_KEY_DIR", str(other_keys))
    code, _, err = run(capsys, "verify", str(outputs["png"]), "--trust", str(trust))
    assert code == 0, err


def test_plain_png_is_unknown(settings, monkeypatch, capsys, tmp_path):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    plain = tmp_path / "plain.png"
    textured(1, 64).save(plain)
    code, out, err = run(capsys, "verify", str(plain))
    assert code == 3 and json.loads(out)["status"] == "unknown" and "no studio provenance" in err


def test_cli_exports_carry_their_manifest_and_verify(settings, monkeypatch, capsys, tmp_path):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    source = tmp_path / "sketch.png"
    textured(4, 96).save(source)
    out = tmp_path / "bag.glb"
    assert main(["mesh", str(source), "--out", str(out)]) == 0
    capsys.readouterr()
    assert manifest_path(out).is_file()
    code, printed, err = run(capsys, "verify", str(out))
    assert code == 0, err
    assert json.loads(printed)["record"]["kind"] == "mesh"
