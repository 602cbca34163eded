"""``studio generate`` with a sketch, a starting image, adapters, preset, scheduler and speed."""
from __future__ import annotations

import pytest
from helpers import snapshot_files

from design_studio.cli import main
from pipelines.concept import read_png_metadata
from pipelines.testing import tiny_lora


@pytest.fixture
def env(tmp_path, models_dir, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("STUDIO_DEVICE", "cpu")
    data = tmp_path / "data"
    tiny_lora(data / "adapters", "house", seed=1)
    return data


def test_generate_from_sketch_with_adapter_preset_scheduler(env, tmp_path, capsys):
    from test_sketch import paper_scan

    sketch, out = tmp_path / "sketch.jpg", tmp_path / "out"
    paper_scan().save(sketch)
    code = main(["generate", "a bag", "--sketch", str(sketch), "--strength", "0.7", "-n", "2", "--profile", "tiny",
                 "--out", str(out), "--adapter", "house:0.6", "--preset", "handbag", "--scheduler", "euler_a",
                 "--speed", "draft", "--seed", "5", "--data-dir", str(env)])
    assert code == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and len(capsys.readouterr().out.strip().splitlines()) == 2
    meta = read_png_metadata(pngs[0])
    assert meta["mode"] == "sketch" and meta["strength"] == 0.7 and meta["scheduler"] == "euler_a"
    assert meta["adapters"][0]["name"] == "house" and meta["preset"] == "handbag" and meta["speed"] == "draft"
    code = main(["generate", "a bag", "--init-image", str(pngs[0]), "--strength", "0.5", "-n", "1",
                 "--profile", "tiny", "--out", str(out), "--data-dir", str(env)])
    assert code == 0 and read_png_metadata(sorted(out.glob("*.png"))[-1])["mode"] in ("img2img",)


@pytest.mark.parametrize("extra, message", [
    (["--strength", "1.5", "--sketch", "SKETCH"], "strength must be between 0.0 and 1.0"),
    (["--adapter", "nope"], "adapter 'nope' is not known"),
    (["--sketch", "missing.png"], "no such file"),
])
def test_bad_generate_flags(env, tmp_path, capsys, extra, message):
    from test_sketch import paper_scan

    paper_scan().save(tmp_path / "sketch.png")
    extra = [str(tmp_path / "sketch.png") if x == "SKETCH" else x for x in extra]
    before = snapshot_files(env / "files")
    code = main(["generate", "a bag", "--profile", "tiny", "--out", str(tmp_path / "out"), "--data-dir", str(env), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert snapshot_files(env / "files") == before and not (tmp_path / "out").exists()
