"""TripoSG and TripoSG-scribble on their twins: strict loading, image/sketch -> valid textured GLB, bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

from helpers import validate_glb
from test_backends import bag_image

BUDGET, SIZE_M, TEXTURE = 1200, 0.25, 128


def sketch_image() -> Image.Image:
    """Black pen lines of a bag on white paper."""
    img = Image.new("RGB", (160, 140), "white")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((30, 50, 130, 128), 12, outline="black", width=3)
    draw.arc((55, 10, 105, 80), 180, 360, fill="black", width=3)
    return img


@pytest.fixture(scope="module")
def twins(models_dir) -> dict[str, Path]:
    from pipelines.testing import materialize_tiny_mesh_models

    return materialize_tiny_mesh_models(models_dir / "tiny")


@pytest.fixture(scope="module")
def backend(twins):
    from pipelines.mesh.triposg import TripoSGBackend

    return TripoSGBackend.load(twins["triposg"], model_name="VAST-AI/TripoSG", steps=2, num_tokens=32)


def options(**kw):
    from pipelines.mesh import MeshOptions

    return MeshOptions(**{**dict(grid=32, size_m=SIZE_M, face_budget=BUDGET, texture_size=TEXTURE, seed=1), **kw})


# ----------------------------------------------------------------------------- twins and strict loading
@pytest.mark.parametrize("role", ["triposg", "triposg-scribble"])
def test_twin_has_the_published_layout(twins, role):
    root = twins[role]
    index = json.loads((root / "model_index.json").read_text())
    expected = {"transformer", "vae", "scheduler", "image_encoder_dinov2", "feature_extractor_dinov2"}
    if role == "triposg-scribble":
        expected |= {"tokenizer", "text_encoder"}
    assert expected <= set(index) and all((root / name).is_dir() for name in expected)
    assert json.loads((root / "vae" / "config.json").read_text())["_class_name"] == "Tripo2VAEModel"
    assert json.loads((root / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == "RectifiedFlowScheduler"
    transformer = json.loads((root / "transformer" / "config.json").read_text())
    assert {"num_attention_heads", "width", "in_channels", "num_layers", "cross_attention_dim"} <= set(transformer)
    assert transformer["use_cross_attention_2"] is (role == "triposg-scribble")
    assert not list(root.rglob("*.bin")) and not list(root.rglob("*.ckpt"))  # safetensors only
    from safetensors import safe_open

    with safe_open(str(root / "image_encoder_dinov2" / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    # the published DINOv2 was saved by transformers 4: its names, which transformers 5 maps on load
    assert any(".attention.attention.query." in k for k in names) and not any(".q_proj." in k for k in names)


def test_every_published_tensor_fills_a_parameter(twins):
    from safetensors import safe_open

    from pipelines.mesh.triposg import load_components

    parts = load_components(twins["triposg"])
    for folder, module in (("transformer", parts.transformer), ("vae", parts.vae)):
        with safe_open(str(twins["triposg"] / folder / "diffusion_pytorch_model.safetensors"), "pt") as f:
            published = set(f.keys())
        assert published == set(module.state_dict())
    assert not parts.takes_text and type(parts.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    # The encoder half of the published VAE is loaded too, and runs: surface points -> latent tokens.
    import torch

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    points = torch.tensor(sphere.vertices, dtype=torch.float32)[None]
    normals = torch.tensor(sphere.vertex_normals, dtype=torch.float32)[None]
    with torch.no_grad():
        latents = parts.vae.encode(points, normals, num_tokens=16, generator=torch.Generator().manual_seed(0))
        values = parts.vae.sdf(parts.vae.keys(latents), torch.zeros(1, 5, 3))
    assert latents.shape == (1, 16, parts.vae.config.latent_channels) and torch.isfinite(values).all()


def _rewrite_weights(path: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_missing_or_extra_tensors_are_refused_by_name(twins, tmp_path):
    import torch

    from pipelines.mesh.triposg import CheckpointMismatch, load_components

    missing = shutil.copytree(twins["triposg"], tmp_path / "missing")
    _rewrite_weights(missing / "transformer" / "diffusion_pytorch_model.safetensors",
                     lambda t: t.pop("blocks.0.attn1.norm_q.weight"))
    with pytest.raises(CheckpointMismatch, match=r"transformer .*have no weights, e\.g\. blocks\.0\.attn1\.norm_q\.weight"):
        load_components(missing)

    extra = shutil.copytree(twins["triposg"], tmp_path / "extra")
    _rewrite_weights(extra / "vae" / "diffusion_pytorch_model.safetensors",
                     lambda t: t.__setitem__("decoder.blocks.9.norm1.weight", torch.ones(4)))
    with pytest.raises(CheckpointMismatch, match=r"vae .*match no parameter, e\.g\. decoder\.blocks\.9\.norm1\.weight"):
        load_components(extra)

    dino = shutil.copytree(twins["triposg"], tmp_path / "dino")
    _rewrite_weights(dino / "image_encoder_dinov2" / "model.safetensors",
                     lambda t: t.pop(next(k for k in t if k.endswith("layernorm.weight"))))
    with pytest.raises(CheckpointMismatch, match="image_encoder_dinov2"):
        load_components(dino)


# ----------------------------------------------------------------------------- surface extraction
def test_coarse_to_fine_grid_is_exact_near_the_surface_and_queries_less():
    from pipelines.mesh.triposg.extract import marching_cubes, sdf_grid

    def ball(points):
        return 0.55 - points.norm(dim=-1)

    values, queried = sdf_grid(ball, 64, 1.0, dense_limit=16)  # 17^3 dense, then two doublings
    axis = np.linspace(-1, 1, 65)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    exact = 0.55 - np.sqrt(x**2 + y**2 + z**2)
    near = np.abs(exact) < 2 / 64
    assert values.shape == (65, 65, 65) and np.abs(values - exact)[near].max() < 1e-6
    assert ((values > 0) == (exact > 0)).all()
    assert queried < 0.5 * 65**3
    mesh = marching_cubes(values, 1.0)
    assert mesh.is_watertight and abs(np.linalg.norm(mesh.vertices, axis=1).mean() - 0.55) < 0.01


# ----------------------------------------------------------------------------- the flow
def test_schedule_is_triposgs_rectified_flow(backend):
    """sigma_i = 1 - i/N then 0, and one full integration of a constant velocity moves x by exactly v."""
    import torch

    scheduler = backend.components.scheduler
    scheduler.set_timesteps(sigmas=list(1.0 - np.arange(4) / 4), device="cpu")
    assert torch.allclose(scheduler.sigmas, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    x = torch.zeros(1, 3, 2)
    v = torch.ones_like(x)
    for t in scheduler.timesteps:
        x = scheduler.step(-v, t, x, return_dict=False)[0]  # the backend's sign convention
    assert torch.allclose(x, v)


def test_image_to_textured_mesh_within_budget_at_size(backend):
    result = backend.reconstruct(bag_image(), options())
    mesh = result.mesh
    assert result.backend == "triposg" and result.model == "VAST-AI/TripoSG"
    assert 0 < len(mesh.faces) <= BUDGET
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    texture = mesh.visual.material.baseColorTexture
    assert texture.size == (TEXTURE, TEXTURE) and np.asarray(texture).std() > 0
    assert abs(float(mesh.extents.max()) - SIZE_M) < 1e-6
    assert result.params["mask"] == "threshold" and result.params["grid"] == 32
    for stage in ("background", "encode", "denoise", "sdf_query", "marching_cubes", "cleanup", "uv", "bake"):
        assert result.params["timings"][stage] >= 0


def test_seed_reproduces_and_the_image_moves_the_shape(backend):
    a = backend.reconstruct(bag_image(), options(face_budget=100000))
    b = backend.reconstruct(bag_image(), options(face_budget=100000))
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices)
    other = bag_image().transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    c = backend.reconstruct(other, options(face_budget=100000))
    assert len(c.mesh.vertices) != len(a.mesh.vertices) or not np.allclose(c.mesh.vertices, a.mesh.vertices)


def test_bfloat16_runs_the_networks_in_half_and_the_field_in_float32(twins):
    import torch

    from pipelines.mesh.triposg import TripoSGBackend

    half = TripoSGBackend.load(twins["triposg"], model_name="VAST-AI/TripoSG", steps=2, num_tokens=32, dtype="bfloat16")
    assert half.components.transformer.dtype == torch.bfloat16 and half.components.vae.dtype == torch.float32
    result = half.reconstruct(bag_image(), options())
    assert result.params["dtype"] == "bfloat16" and 0 < len(result.mesh.faces) <= BUDGET


def test_image_backend_refuses_a_prompt_and_blank_images(backend):
    from pipelines.errors import InvalidInput

    with pytest.raises(InvalidInput, match="takes no prompt"):
        backend.reconstruct(bag_image(), options(), prompt="a bag")
    with pytest.raises(InvalidInput, match="single flat colour"):
        backend.reconstruct(Image.new("RGB", (64, 64), "white"), options())
    with pytest.raises(InvalidInput, match="fully transparent"):
        backend.reconstruct(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), options())


def test_sketch_texture_keeps_the_paper_inside_the_outline(twins):
    from pipelines.mesh.triposg import TripoSGBackend

    scribble = TripoSGBackend.load(twins["triposg-scribble"], model_name="VAST-AI/TripoSG-scribble", steps=2,
                                   num_tokens=32)
    result = scribble.reconstruct(sketch_image(), options(), prompt="a structured tote")
    assert result.backend == "triposg-scribble" and result.params["prompt"] == "a structured tote"
    texels = np.asarray(result.mesh.visual.material.baseColorTexture, dtype=np.float32)
    assert (texels > 200).all(-1).mean() > 0.3  # mostly the white paper ...
    assert (texels < 60).all(-1).mean() > 0.005  # ... with the pen lines on it
    from pipelines.errors import InvalidInput

    with pytest.raises(InvalidInput, match="prompt is empty"):
        scribble.reconstruct(sketch_image(), options(), prompt="")


# ----------------------------------------------------------------------------- through the studio
def test_tiny_profile_offers_both_and_standard_defaults_to_triposg(studio):
    from design_studio import catalog

    offered = {info.name: entry for info, entry in studio.mesh_backends()}
    assert offered["triposg"].repo_id == "design-studio/tiny-triposg"
    assert offered["triposg-scribble"].repo_id == "design-studio/tiny-triposg-scribble"
    assert catalog.MESH_DEFAULTS["standard"]["backend"] == "triposg"
    for key in ("triposg", "triposg-scribble"):
        entry = catalog.CATALOGUE[key]
        assert entry.commercial and entry.licence == "MIT" and entry.profiles == ("standard", "quality")
        assert entry.loader == "pipelines.mesh.triposg:TripoSGBackend.load"
        assert "part: facebook/dinov2-large DINOv2 ViT-L/14 image encoder (Apache-2.0)" in entry.lineage_line
    assert "CLIP text encoder and tokenizer (MIT)" in catalog.CATALOGUE["triposg-scribble"].lineage_line
    assert catalog.mesh_backend("triposg-scribble").needs_prompt and not catalog.mesh_backend("triposg").needs_prompt
    assert "RMBG" in catalog.CATALOGUE["triposg"].notes  # why upstream's background removal is not used


def test_standard_profile_loads_the_published_folders_from_a_twin_mirror(tmp_path):
    from design_studio.services import Studio
    from design_studio.settings import Settings
    from pipelines.twins import BUILDERS, TRIPOSG_REPO, TRIPOSG_SCRIBBLE_REPO

    mirror = tmp_path / "models"
    for repo_id in (TRIPOSG_REPO, TRIPOSG_SCRIBBLE_REPO):
        BUILDERS[repo_id](mirror / repo_id)
    studio = Studio(Settings(data_dir=tmp_path / "data", models_dir=mirror, profile="standard", device="cpu"))
    image, sketch = studio.meshes.backend("triposg"), studio.meshes.backend("triposg-scribble")
    assert (image.model_name, image.name, image.takes_text) == ("VAST-AI/TripoSG", "triposg", False)
    assert (sketch.model_name, sketch.name, sketch.takes_text) == ("VAST-AI/TripoSG-scribble", "triposg-scribble", True)
    # the published sampling settings, not the tiny profile's
    assert (image.sampling.steps, image.sampling.guidance, image.sampling.num_tokens) == (50, 7.0, 2048)
    assert (sketch.sampling.steps, sketch.sampling.guidance, sketch.sampling.num_tokens) == (16, 0.0, 512)


def test_service_makes_a_valid_glb_and_checks_prompts_first(studio, twins, tmp_path):
    from design_studio.errors import InvalidRequest

    path = tmp_path / "bag.png"
    bag_image().save(path)
    image = studio.import_image(path, name="bag.png")
    with pytest.raises(InvalidRequest, match="prompt is empty"):
        studio.make_mesh(image.id, backend="triposg-scribble", prompt="  ")
    with pytest.raises(InvalidRequest, match="takes no prompt"):
        studio.make_mesh(image.id, backend="triposg", prompt="a bag")
    assert studio.store.designs(kind="mesh") == []
    mesh = studio.make_mesh(image.id, backend="triposg", size_cm=25, face_budget=BUDGET, texture_size=TEXTURE,
                            resolution=32, previews=False)
    assert mesh.parent_id == image.id and mesh.params["backend"] == "triposg" and mesh.params["grid"] == 32
    glb = studio.store.file_path(mesh)
    loaded = trimesh.load(glb, force="mesh")
    assert abs(loaded.extents.max() - 0.25) < 1e-4 and len(loaded.faces) <= BUDGET
    assert loaded.visual.material.baseColorTexture.size == (TEXTURE, TEXTURE)
    parts = {c["name"]: c for c in mesh.params["bom"]["components"]}
    assert parts["design-studio/tiny-triposg"]["role"] == "3D backend triposg"
    assert {"studio-background", "scikit-image", "diffusers", "transformers"} <= set(parts)
    validate_glb(glb)


@pytest.mark.parametrize("repo, parts", [
    ("VAST-AI/TripoSG", {"facebook/dinov2-large": "Apache-2.0"}),
    ("VAST-AI/TripoSG-scribble", {"facebook/dinov2-large": "Apache-2.0", "OpenAI CLIP": "MIT"}),
])
def test_bom_of_a_published_triposg_mesh_names_its_weights_and_encoders(repo, parts):
    from design_studio.bom import mesh_bom

    backend = "triposg-scribble" if repo.endswith("scribble") else "triposg"
    bom = mesh_bom(repo, "main", {"backend": backend, "mask": "alpha"}, profile="standard")
    named = {c["name"]: c for c in bom["components"]}
    assert named[repo]["licence"] == "MIT" and named[repo]["kind"] == "weights"
    assert "facebook/dinov2-large" in named[repo]["lineage"]
    for name, licence in parts.items():
        assert named[name]["licence"] == licence and named[name]["kind"] == "weights"
        assert repo in named[name]["role"]
    assert named["studio-background"]["licence"] == "the studio's own code"
    assert bom["restricted"] is False


# ----------------------------------------------------------------------------- the command line
def run_studio(*args, data_dir: Path, models_dir: Path):
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir), STUDIO_MODELS_DIR=str(models_dir), STUDIO_DEVICE="cpu",
               STUDIO_PROFILE="tiny")
    return subprocess.run([sys.executable, "-m", "design_studio.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_cli_image_to_glb(tmp_path, models_dir, twins):
    image = tmp_path / "bag.png"
    bag_image().save(image)
    out = tmp_path / "out" / "bag.glb"
    proc = run_studio("mesh", str(image), "--backend", "triposg", "--size-cm", "30", "--resolution", "32",
                      "--face-budget", "900", "--out", str(out), "--no-previews",
                      data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "\ttriposg\t" in proc.stdout and "30 cm" in proc.stdout
    mesh = trimesh.load(out, force="mesh")
    assert abs(mesh.extents.max() - 0.30) < 1e-4 and len(mesh.faces) <= 900
    assert mesh.visual.material.baseColorTexture is not None
    validate_glb(out)


@pytest.mark.slow
def test_cli_sketch_and_prompt_to_glb(tmp_path, models_dir, twins):
    sketch = tmp_path / "sketch.png"
    sketch_image().save(sketch)
    out = tmp_path / "out" / "sketch.glb"
    proc = run_studio("mesh", str(sketch), "--backend", "triposg-scribble", "--prompt", "a structured tote",
                      "--size-cm", "40", "--face-budget", "900", "--out", str(out), "--no-previews",
                      data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 0, proc.stderr
    assert "\ttriposg-scribble\t" in proc.stdout and "40 cm" in proc.stdout
    mesh = trimesh.load(out, force="mesh")
    assert abs(mesh.extents.max() - 0.40) < 1e-4 and len(mesh.faces) <= 900
    validate_glb(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["mesh", "SKETCH", "--backend", "triposg-scribble", "--out", "OUT/x.glb"], "SKETCH file and --prompt"),
        (["mesh", "BLANK", "--backend", "triposg-scribble", "--prompt", "a tote", "--out", "OUT/x.glb"],
         "single flat colour"),
    ],
)
def test_bad_triposg_requests_exit_2_with_one_line(tmp_path, models_dir, twins, args, message):
    sketch, blank = tmp_path / "sketch.png", tmp_path / "blank.png"
    sketch_image().save(sketch)
    Image.new("RGB", (64, 64), "white").save(blank)
    args = [a.replace("SKETCH", str(sketch)).replace("BLANK", str(blank)).replace("OUT", str(tmp_path / "o"))
            for a in args]
    proc = run_studio(*args, data_dir=tmp_path / "data", models_dir=models_dir)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("studio: error")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "o").exists()
