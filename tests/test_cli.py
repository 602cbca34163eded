"""The `studio` command-line contract, run as a real subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh
from PIL import Image

from pipelines.concept import read_png_metadata


def run_studio(*args, data_dir: Path, models_dir: Path):
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir), STUDIO_MODELS_DIR=str(models_dir), STUDIO_DEVICE="cpu")
    return subprocess.run([sys.executable, "-m", "design_studio.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_generate_then_mesh(tmp_path, models_dir):
    out = tmp_path / "out"
    proc = run_studio("generate", "a cognac leather handbag", "-n", "4", "--profile", "tiny", "--seed", "3",
                      "--out", str(out), data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 4
    assert sorted(read_png_metadata(p)["seed"] for p in pngs) == [3, 4, 5, 6]
    for p in pngs:
        with Image.open(p) as img:
            assert img.text["studio:prompt"] == "a cognac leather handbag"
            assert img.text["studio:model"] == "design-studio/tiny-stable-diffusion"

    glb = tmp_path / "bag.glb"
    proc = run_studio("mesh", str(pngs[0]), "--out", str(glb), data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 0, proc.stderr
    mesh = trimesh.load(glb, force="mesh")
    assert mesh.visual.uv is not None and mesh.visual.material.baseColorTexture is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "", "--out", "OUT"], "prompt is empty"),
        (["generate", "bag", "--steps", "0", "--out", "OUT"], "steps must be between"),
        (["generate", "bag", "--width", "100", "--out", "OUT"], "multiple of 8"),
        (["mesh", "NOTIMG", "--out", "OUT/x.glb"], "not a readable image"),
        (["mesh", "NOTIMG", "--out", "OUT/x.obj"], "must end in .glb"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path, models_dir, args, message):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    out = tmp_path / "out"
    args = [a.replace("OUT", str(out)).replace("NOTIMG", str(bad)) for a in args]
    proc = run_studio(*args, data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("studio: error: ") and message in lines[0]
    assert not out.exists()
