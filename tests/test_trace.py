"""`studio trace FILE...`: a cropped, resized or re-encoded copy of a studio output names its design,
who made it and when; a picture the studio did not make says `no mark found` (exit 3); bad input exits 2."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from gov_helpers import as_user, cli_env
from PIL import Image

from design_studio.cli import main


@pytest.fixture
def traced_studio(studio, settings, monkeypatch):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    return studio


@pytest.fixture
def concept(traced_studio):
    return traced_studio.generate_concepts("a saddle bag in tan leather", n=1, seed=5, width=512, height=512, actor=as_user(traced_studio, "ana"))[0]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leaked_copies(path, tmp_path):
    """What happens to a concept on its way out: cropped and sent as JPEG, shrunk, made a WEBP."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        copies = {
            "crop.jpg": (im.crop((w // 10, h // 12, w - w // 14, h - w // 10)), dict(format="JPEG", quality=70)),
            "half.png": (im.resize((w // 2, h // 2), Image.BICUBIC), dict(format="PNG")),
            "copy.webp": (im, dict(format="WEBP")),
        }
    files = []
    for name, (image, options) in copies.items():
        image.save(tmp_path / name, **options)
        files.append(tmp_path / name)
    return files


def test_trace_names_the_design_of_each_leaked_copy(traced_studio, concept, tmp_path, capsys):
    files = leaked_copies(traced_studio.store.file_path(concept), tmp_path)
    code, out, err = run(capsys, "trace", *map(str, files))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert f"design {concept.id} uid {concept.uid} by ana" in line and "signature valid" in line

    code, out, _ = run(capsys, "trace", "--json", str(files[0]))
    found = json.loads(out)
    assert code == 0 and found["design_id"] == concept.id and found["created_by"] == "ana"
    assert found["model"] == concept.model and found["signature"] == "valid"


def test_outside_image_has_no_mark_and_exit_3(traced_studio, concept, tmp_path, capsys):
    from brand_guard_images import textured_image

    outside = tmp_path / "outside.png"
    textured_image(3, 400).save(outside)
    leaked = leaked_copies(traced_studio.store.file_path(concept), tmp_path)[0]
    code, out, _ = run(capsys, "trace", str(leaked), str(outside))
    assert code == 3
    assert out.strip().splitlines()[1] == f"{outside}: no mark found"


def test_a_tampered_record_shows_in_the_signature_column(traced_studio, concept, tmp_path, capsys):
    from brand_guard.provenance import manifest_path

    leaked = leaked_copies(traced_studio.store.file_path(concept), tmp_path)[1]
    manifest = manifest_path(traced_studio.store.file_path(concept))
    manifest.write_text(manifest.read_text().replace("saddle bag", "saddle bags"))
    code, out, _ = run(capsys, "trace", "--json", str(leaked))
    assert code == 0 and json.loads(out)["signature"] == "tampered"


def test_glb_and_usdz_textures_carry_the_mark(traced_studio, concept, tmp_path, capsys):
    mesh = traced_studio.make_mesh(concept.id, texture_size=512, previews=False, actor=as_user(traced_studio, "ana"))
    glb = traced_studio.store.file_path(mesh)
    code, out, err = run(capsys, "trace", "--json", str(glb))
    assert code == 0, err
    found = json.loads(out)
    assert found["design_id"] == mesh.id and found["source"].startswith("texture")

    # A USDZ is a zip holding the texture: the same mark is read from inside it.
    from brand_guard.provenance import glb_images

    usdz = tmp_path / "model.usdz"
    with zipfile.ZipFile(usdz, "w", zipfile.ZIP_STORED) as package:
        package.writestr("model.usdc", b"#usda 1.0\n")
        package.writestr("textures/base.png", glb_images(glb.read_bytes())[0][1])
    code, out, _ = run(capsys, "trace", "--json", str(usdz))
    assert code == 0 and json.loads(out)["design_id"] == mesh.id


def test_bad_input_exits_2_with_one_line(traced_studio, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    for argv in (["trace", str(tmp_path / "missing.png")], ["trace", str(text)]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1


def test_bomb_is_refused(traced_studio, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    code, _, err = run(capsys, "trace", str(bomb))
    assert code == 2 and "decompression bomb" in err
