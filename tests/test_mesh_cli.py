"""`studio mesh` contract: --list-backends, IMAGE|--prompt, --backend, --size-cm, --format glb|obj|zip."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import trimesh
from PIL import Image, ImageDraw


def run_studio(*args, data_dir: Path, models_dir: Path):
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir), STUDIO_MODELS_DIR=str(models_dir), STUDIO_DEVICE="cpu",
               STUDIO_PROFILE="tiny")
    return subprocess.run([sys.executable, "-m", "design_studio.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_list_backends_one_a_line_name_first(tmp_path, models_dir):
    proc = run_studio("mesh", "--list-backends", data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["depth-relief", "lrm", "shap-e", "triposg", "triposg-scribble"]
    assert all("needs:" in line and "commercial use allowed" in line for line in lines)
    assert "design-studio/tiny-lrm" in lines[1]
    assert "design-studio/tiny-triposg-scribble" in lines[4] and "sketch and prompt" in lines[4]


@pytest.mark.slow
def test_image_to_obj_and_zip_at_size(tmp_path, models_dir):
    image = tmp_path / "strap.png"
    img = Image.new("RGB", (200, 120), "white")
    ImageDraw.Draw(img).rounded_rectangle((10, 50, 190, 70), 8, fill=(30, 30, 30))  # a long thin strap
    img.save(image)
    out = tmp_path / "out" / "strap.obj"
    proc = run_studio("mesh", str(image), "--backend", "depth-relief", "--size-cm", "110", "--format", "obj",
                      "--face-budget", "800", "--out", str(out), "--no-previews",
                      data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "depth-relief" in proc.stdout and "110 cm" in proc.stdout
    mesh = trimesh.load(out, force="mesh")
    assert abs(mesh.extents.max() - 1.10) < 1e-3 and len(mesh.faces) <= 800
    assert mesh.visual.uv is not None and out.with_suffix(".mtl").exists()

    zipped = tmp_path / "out" / "strap.zip"
    proc = run_studio("mesh", str(image), "--backend", "lrm", "--format", "zip", "--out", str(zipped),
                      "--no-previews", data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(zipped) as zf:
        names = zf.namelist()
    assert any(n.endswith(".glb") for n in names) and any(n.endswith(".obj") for n in names)
    assert "provenance.json" in names


@pytest.mark.parametrize(
    "args, message",
    [
        (["mesh", "--out", "OUT/x.glb"], "either an IMAGE file or --prompt"),
        (["mesh", "IMG", "--format", "zip", "--out", "OUT/x.glb"], "must end in .zip"),
        (["mesh", "IMG", "--face-budget", "0", "--out", "OUT/x.glb"], "face budget must be at least 4"),
        (["mesh", "CORRUPT", "--out", "OUT/x.glb"], "corrupt or truncated"),
        (["mesh", "IMG", "--backend", "nerf-magic", "--out", "OUT/x.glb"], "is not one of depth-relief, lrm, shap-e"),
    ],
)
def test_bad_mesh_requests_fail_with_one_line(tmp_path, models_dir, args, message):
    img = tmp_path / "bag.png"
    Image.new("RGB", (32, 32), "white").save(img)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    args = [a.replace("IMG", str(img)).replace("CORRUPT", str(corrupt)).replace("OUT", str(tmp_path / "o")) for a in args]
    proc = run_studio(*args, data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("studio: error")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "o").exists()
