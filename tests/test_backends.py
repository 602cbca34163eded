"""Every 3D backend on its tiny twin: clean, UV-mapped, textured, within budget, at scale, valid exports."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

from pipelines.errors import InvalidImage, InvalidInput
from pipelines.mesh import MeshOptions, export_glb, load_mesh_bytes
from pipelines.mesh.export import export_obj, export_zip, load_obj_files

from helpers import validate_glb
BACKENDS = ["depth-relief", "lrm", "shap-e"]
BUDGET, SIZE_M, TEXTURE = 1500, 0.25, 128


def bag_image() -> Image.Image:
    """A cognac bag with a thin handle on a white studio backdrop."""
    img = Image.new("RGB", (160, 128), "white")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((30, 44, 130, 118), 14, fill=(154, 78, 28))
    draw.line((40, 80, 120, 80), fill=(90, 40, 15), width=2)  # a stitch line
    draw.arc((55, 8, 105, 70), 180, 360, fill=(110, 50, 20), width=7)
    return img


def load_backend(name: str, models_dir: Path):
    from design_studio.settings import Settings
    from design_studio.services import Studio

    studio = Studio(Settings(data_dir=models_dir / "backend-tests", models_dir=models_dir, profile="tiny", device="cpu"))
    return studio.meshes.backend(name)


@pytest.fixture(scope="module", params=BACKENDS)
def made(request, models_dir):
    backend = load_backend(request.param, models_dir)
    options = MeshOptions(resolution=48, size_m=SIZE_M, face_budget=BUDGET, texture_size=TEXTURE, grid=32, seed=1)
    return request.param, backend.reconstruct(bag_image(), options)


def test_mesh_is_textured_uv_mapped_within_budget_and_at_scale(made):
    name, result = made
    mesh = result.mesh
    assert result.backend == name
    assert 0 < len(mesh.faces) <= BUDGET
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    assert 0.0 <= mesh.visual.uv.min() and mesh.visual.uv.max() <= 1.0
    texture = mesh.visual.material.baseColorTexture
    assert texture.size == (TEXTURE, TEXTURE)
    assert np.asarray(texture).std() > 0  # something was baked, not a flat fill
    assert abs(float(mesh.extents.max()) - SIZE_M) < 1e-6
    # Watertight or reported: the flag is recorded and agrees with the geometry (UV seams merged).
    merged = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
    assert result.params["watertight"] == merged.is_watertight
    for stage in ("background", "reconstruction", "cleanup", "decimate", "uv", "bake"):
        assert result.params["timings"][stage] >= 0


def test_glb_and_obj_round_trip(made):
    _, result = made
    mesh = result.mesh
    glb = load_mesh_bytes(export_glb(mesh))
    assert len(glb.faces) == len(mesh.faces)
    assert glb.visual.uv is not None and glb.visual.material.baseColorTexture.size == (TEXTURE, TEXTURE)
    assert np.allclose(glb.extents, mesh.extents, atol=1e-5)
    files = export_obj(mesh, "bag")
    assert {"bag.obj", "bag.mtl"} <= set(files) and any(f.endswith(".png") for f in files)
    obj = load_obj_files(files)
    assert len(obj.faces) == len(mesh.faces)
    assert obj.visual.uv is not None and obj.visual.material.image.size == (TEXTURE, TEXTURE)


def test_zip_holds_both_formats_and_provenance(made):
    import zipfile

    _, result = made
    data = export_zip(result.mesh, {"design": 7, "params": {"size_cm": 25}}, "bag", sign=lambda b: "sig:" + str(len(b)))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        assert {"bag.glb", "bag.obj", "bag.mtl", "provenance.json", "provenance.sig"} <= names
        record = json.loads(zf.read("provenance.json"))
        assert record["design"] == 7 and record["signature"] is None
        assert set(record["files"]) >= {"bag.glb", "bag.obj"}
        assert zf.read("provenance.sig").decode().startswith("sig:")


def test_every_backend_glb_passes_khronos_validator(made, tmp_path):
    _, result = made
    path = tmp_path / "m.glb"
    path.write_bytes(export_glb(result.mesh))
    validate_glb(path)


def test_shap_e_text_to_3d(models_dir):
    backend = load_backend("shap-e", models_dir)
    from design_studio.settings import Settings
    from design_studio.services import Studio

    studio = Studio(Settings(data_dir=models_dir / "backend-tests", models_dir=models_dir, profile="tiny", device="cpu"))
    text = studio.meshes.backend("shap-e", text=True)
    assert text.takes_text and not backend.takes_text
    options = MeshOptions(size_m=0.4, face_budget=800, texture_size=64, grid=24, seed=3)
    result = text.generate("a soft tote", options)
    assert 0 < len(result.mesh.faces) <= 800 and abs(result.mesh.extents.max() - 0.4) < 1e-6
    assert result.params["prompt"] == "a soft tote" and result.params["seed"] == 3
    with pytest.raises(InvalidInput, match="prompt is empty"):
        text.generate("  ", options)
    with pytest.raises(InvalidInput, match="give a prompt"):
        text.reconstruct(bag_image(), options)


def test_lrm_save_load_round_trip(tmp_path):
    """The tiny LRM saves under TripoSR's key names and reloads to the same network
    (TripoSR's own config.yaml + model.ckpt layout: tests/test_lrm_published.py)."""
    import torch
    from safetensors.torch import load_file

    from pipelines.mesh.lrm import LargeReconstructionModel
    from pipelines.testing import tiny_lrm

    model = tiny_lrm(seed=2)
    model.save(tmp_path / "ours")
    saved = load_file(str(tmp_path / "ours" / "model.safetensors"))
    assert any(".encoder.layer.0.attention.attention.query." in k for k in saved)
    loaded = LargeReconstructionModel.load(tmp_path / "ours")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


# ----------------------------------------------------------------------------- bad inputs
@pytest.fixture(scope="module")
def relief(models_dir):
    return load_backend("depth-relief", models_dir)


def test_fully_transparent_image_is_refused(relief):
    with pytest.raises(InvalidInput, match="fully transparent"):
        relief.reconstruct(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), MeshOptions())


def test_one_pixel_image_is_refused(relief):
    with pytest.raises(InvalidInput, match="1x1 pixels"):
        relief.reconstruct(Image.new("RGB", (1, 1), "red"), MeshOptions())


def test_face_budget_zero_is_refused(relief):
    with pytest.raises(InvalidInput, match="face_budget"):
        relief.reconstruct(bag_image(), MeshOptions(face_budget=0))


def test_corrupt_upload_is_refused():
    from pipelines.images import open_image

    with pytest.raises(InvalidImage, match="not a readable image|corrupt"):
        open_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)


def test_unknown_backends_say_why(studio):
    from design_studio.errors import InvalidRequest

    image = studio.import_image(_png_file(studio), name="bag.png")
    with pytest.raises(InvalidRequest, match="'nerf-magic' is not one of depth-relief, lrm, shap-e"):
        studio.make_mesh(image.id, backend="nerf-magic")
    with pytest.raises(InvalidRequest, match="face budget"):
        studio.make_mesh(image.id, face_budget=0)
    assert studio.store.designs(kind="mesh") == []


def _png_file(studio) -> Path:
    path = studio.settings.data_dir / "bag.png"
    bag_image().save(path)
    return path
