"""Twins of the shipped models: published layouts, and each runs through the studio's own loaders."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipelines import twins

#: The published file lists (the subset a studio pull fetches), per repository.
PUBLISHED_FILES = {
    "stabilityai/stable-diffusion-xl-base-1.0": {
        "model_index.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors",
        "text_encoder_2/config.json", "text_encoder_2/model.safetensors",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
        "tokenizer_2/merges.txt", "tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer_config.json",
        "tokenizer_2/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    },
    "xinsir/controlnet-scribble-sdxl-1.0": {"config.json", "diffusion_pytorch_model.safetensors"},
    "black-forest-labs/FLUX.1-schnell": {
        "model_index.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors",
        "text_encoder_2/config.json", "text_encoder_2/model.safetensors",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
        "tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer.json", "tokenizer_2/tokenizer_config.json",
        "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    },
    "depth-anything/Depth-Anything-V2-Small-hf": {"config.json", "model.safetensors", "preprocessor_config.json"},
    "stabilityai/TripoSR": {"config.yaml", "model.ckpt"},
    "openai/shap-e": {
        "model_index.json", "prior/config.json", "prior/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json", "shap_e_renderer/config.json",
        "shap_e_renderer/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
        "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    },
    "VAST-AI/TripoSG": {
        "model_index.json", "feature_extractor_dinov2/preprocessor_config.json", "image_encoder_dinov2/config.json",
        "image_encoder_dinov2/model.safetensors", "scheduler/scheduler_config.json", "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    },
    "VAST-AI/TripoSG-scribble": {
        "model_index.json", "feature_extractor_dinov2/preprocessor_config.json", "image_encoder_dinov2/config.json",
        "image_encoder_dinov2/model.safetensors", "scheduler/scheduler_config.json", "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
    },
    "huanngzh/mv-adapter": {"mvadapter_ig2mv_sdxl.safetensors"},
    "openai/shap-e-img2img": {
        "model_index.json", "prior/config.json", "prior/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json", "shap_e_renderer/config.json",
        "shap_e_renderer/diffusion_pytorch_model.safetensors", "image_encoder/config.json",
        "image_encoder/model.safetensors", "image_processor/preprocessor_config.json",
    },
}


def catalogue_repos(profile: str) -> set[str]:
    from design_studio import catalog

    return {entry.repo_id for _, entry in catalog.profile_models(profile) if not entry.tiny}


@pytest.mark.parametrize("profile", ["standard", "quality"])
def test_twin_lists_match_the_catalogue(profile):
    assert set(twins.PROFILE_REPOS[profile]) == catalogue_repos(profile)
    assert set(twins.repos_for(profile)) <= set(twins.BUILDERS)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="not one of standard, quality, all"):
        twins.repos_for("huge")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    reports = {r.repo_id: r for r in twins.build(root, "all")}
    return root, reports


@pytest.fixture(scope="module")
def timings(mirror, artifacts):
    """Per twin: bytes on disk, build seconds, load + run seconds (written to test-artifacts)."""
    _, reports = mirror
    record = {repo: {"bytes": r.bytes, "build_s": round(r.seconds, 2)} for repo, r in reports.items()}
    yield record
    (artifacts / "twins.json").write_text(json.dumps(record, indent=2))


def relative_files(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_every_twin_has_the_published_files_and_is_small(mirror):
    root, reports = mirror
    assert set(reports) == set(PUBLISHED_FILES)
    for repo, files in PUBLISHED_FILES.items():
        assert relative_files(root / repo) == files, repo
        assert reports[repo].bytes < 5_000_000, repo
    assert sum(r.bytes for r in reports.values()) < 20_000_000


def test_configs_have_the_published_classes_and_keys(mirror):
    root, _ = mirror
    sdxl = root / "stabilityai/stable-diffusion-xl-base-1.0"
    index = json.loads((sdxl / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    assert index["scheduler"] == ["diffusers", "EulerDiscreteScheduler"]
    unet = json.loads((sdxl / "unet/config.json").read_text())
    enc2 = json.loads((sdxl / "text_encoder_2/config.json").read_text())
    enc1 = json.loads((sdxl / "text_encoder/config.json").read_text())
    assert unet["addition_embed_type"] == "text_time" and unet["use_linear_projection"] is True
    assert unet["projection_class_embeddings_input_dim"] == enc2["projection_dim"] + 6 * unet["addition_time_embed_dim"]
    assert unet["cross_attention_dim"] == enc1["hidden_size"] + enc2["hidden_size"]
    assert len(unet["transformer_layers_per_block"]) == len(unet["down_block_types"]) == 3
    assert enc2["architectures"] == ["CLIPTextModelWithProjection"]
    scheduler = json.loads((sdxl / "scheduler/scheduler_config.json").read_text())
    assert scheduler["timestep_spacing"] == "leading" and scheduler["steps_offset"] == 1
    vae = json.loads((sdxl / "vae/config.json").read_text())
    assert len(vae["block_out_channels"]) == 4 and vae["scaling_factor"] == 0.13025 and vae["force_upcast"]

    control = json.loads((root / "xinsir/controlnet-scribble-sdxl-1.0/config.json").read_text())
    assert control["_class_name"] == "ControlNetModel"
    for key in ("block_out_channels", "down_block_types", "transformer_layers_per_block", "attention_head_dim",
                "cross_attention_dim", "addition_embed_type", "projection_class_embeddings_input_dim"):
        assert control[key] == unet[key], key

    flux = root / "black-forest-labs/FLUX.1-schnell"
    index = json.loads((flux / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline"
    assert index["text_encoder_2"] == ["transformers", "T5EncoderModel"]
    assert index["tokenizer_2"] == ["transformers", "T5TokenizerFast"]
    transformer = json.loads((flux / "transformer/config.json").read_text())
    t5 = json.loads((flux / "text_encoder_2/config.json").read_text())
    assert transformer["guidance_embeds"] is False and transformer["in_channels"] == 64
    assert transformer["joint_attention_dim"] == t5["d_model"]
    assert sum(transformer["axes_dims_rope"]) == transformer["attention_head_dim"]
    vae = json.loads((flux / "vae/config.json").read_text())
    assert vae["latent_channels"] == 16 and vae["shift_factor"] == 0.1159 and vae["scaling_factor"] == 0.3611
    assert vae["use_quant_conv"] is False and vae["use_post_quant_conv"] is False
    scheduler = json.loads((flux / "scheduler/scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "FlowMatchEulerDiscreteScheduler" and scheduler["use_dynamic_shifting"] is False

    depth = json.loads((root / "depth-anything/Depth-Anything-V2-Small-hf/config.json").read_text())
    assert depth["architectures"] == ["DepthAnythingForDepthEstimation"]
    assert depth["backbone_config"]["model_type"] == "dinov2" and depth["reassemble_factors"] == [4, 2, 1, 0.5]


def test_t5_tokenizer_closes_with_eos_and_pads(mirror):
    from transformers import T5TokenizerFast

    root, _ = mirror
    tok = T5TokenizerFast.from_pretrained(str(root / "black-forest-labs/FLUX.1-schnell/tokenizer_2"))
    ids = tok("A tan leather tote", padding="max_length", max_length=32).input_ids
    assert len(ids) == 32 and tok.eos_token_id in ids and ids[-1] == tok.pad_token_id
    assert tok.unk_token_id not in ids[: ids.index(tok.eos_token_id)]


def _sketch() -> Image.Image:
    img = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(img).rectangle((12, 16, 52, 56), outline="white", width=3)
    return img


def test_sdxl_and_its_controlnet_run_through_concept_model(mirror, timings):
    from pipelines.concept import ConceptModel, ConceptRequest

    root, _ = mirror
    start = time.perf_counter()
    model = ConceptModel.load(root / "stabilityai/stable-diffusion-xl-base-1.0", name="sdxl")
    assert type(model.pipe).__name__ == "StableDiffusionXLPipeline"
    text = model.generate(ConceptRequest(prompt="a tan tote", n=1, seed=3, steps=2, width=64, height=64))
    timings["stabilityai/stable-diffusion-xl-base-1.0"]["load_run_s"] = round(time.perf_counter() - start, 2)
    assert text[0].image.size == (64, 64)
    start = time.perf_counter()
    model.attach_controlnet(root / "xinsir/controlnet-scribble-sdxl-1.0", name="scribble")
    sketch = model.generate(ConceptRequest(prompt="a tan tote", n=1, seed=3, steps=2, width=64, height=64,
                                           mode="sketch", image=_sketch()))
    timings["xinsir/controlnet-scribble-sdxl-1.0"]["load_run_s"] = round(time.perf_counter() - start, 2)
    assert type(model.pipeline("sketch")).__name__ == "StableDiffusionXLControlNetPipeline"
    assert sketch[0].params["sketch_backend"] == "controlnet"
    diff = np.abs(np.asarray(sketch[0].image, float) - np.asarray(text[0].image, float)).mean()
    assert diff > 1.0  # the ControlNet residuals reach the UNet


def test_flux_schnell_runs_through_concept_model(mirror, timings):
    from pipelines.concept import ConceptModel, ConceptRequest

    root, _ = mirror
    start = time.perf_counter()
    model = ConceptModel.load(root / "black-forest-labs/FLUX.1-schnell", name="flux")
    assert type(model.pipe).__name__ == "FluxPipeline"
    assert type(model.pipe.text_encoder_2).__name__ == "T5EncoderModel"
    out = model.generate(ConceptRequest(prompt="a tan tote", n=2, seed=5, steps=2, guidance=0.0, width=64, height=64))
    timings["black-forest-labs/FLUX.1-schnell"]["load_run_s"] = round(time.perf_counter() - start, 2)
    assert [im.image.size for im in out] == [(64, 64), (64, 64)]
    assert np.abs(np.asarray(out[0].image, float) - np.asarray(out[1].image, float)).mean() > 0.5
    assert model.scheduler_names() == ["flow_euler"]
    sketch = model.generate(ConceptRequest(prompt="a tan tote", n=1, seed=5, steps=2, guidance=0.0, width=64,
                                           height=64, mode="sketch", image=_sketch()))
    assert sketch[0].params["sketch_backend"] == "img2img"


def _bag() -> Image.Image:
    img = Image.new("RGB", (96, 80), "white")
    ImageDraw.Draw(img).rounded_rectangle((18, 24, 80, 74), 10, fill=(154, 78, 28))
    return img


def test_depth_anything_runs_through_depth_relief(mirror, timings):
    from pipelines.mesh import MeshOptions
    from pipelines.mesh.depth_relief import DepthReliefBackend

    root, _ = mirror
    repo = "depth-anything/Depth-Anything-V2-Small-hf"
    start = time.perf_counter()
    backend = DepthReliefBackend.load(root / repo, model_name=repo)
    assert type(backend.model).__name__ == "DepthAnythingForDepthEstimation"
    result = backend.reconstruct(_bag(), MeshOptions(resolution=24, face_budget=800, texture_size=64))
    timings[repo]["load_run_s"] = round(time.perf_counter() - start, 2)
    assert 0 < len(result.mesh.faces) <= 800


def test_triposr_twin_converts_loads_and_meshes(mirror, timings, tmp_path):
    from pipelines.mesh import MeshOptions
    from pipelines.mesh.lrm import LRMBackend, convert_triposr_checkpoint

    root, _ = mirror
    repo = "stabilityai/TripoSR"
    start = time.perf_counter()
    converted = convert_triposr_checkpoint(root / repo, tmp_path / "triposr")
    backend = LRMBackend.load(converted, model_name=repo)
    result = backend.reconstruct(_bag(), MeshOptions(grid=24, face_budget=600, texture_size=64))
    timings[repo]["load_run_s"] = round(time.perf_counter() - start, 2)
    assert 0 < len(result.mesh.faces) <= 600 and result.params["grid"] == 24


@pytest.mark.parametrize("repo", ["openai/shap-e", "openai/shap-e-img2img"])
def test_shap_e_twins_run_through_the_shap_e_backend(mirror, timings, repo):
    from pipelines.mesh import MeshOptions
    from pipelines.mesh.shap_e import ShapEBackend

    root, _ = mirror
    start = time.perf_counter()
    backend = ShapEBackend.load(root / repo, model_name=repo, steps=2)
    options = MeshOptions(grid=24, face_budget=600, texture_size=64, seed=1)
    if repo == "openai/shap-e":
        assert backend.takes_text
        result = backend.generate("a soft tote", options)
    else:
        assert not backend.takes_text
        result = backend.reconstruct(_bag(), options)
    timings[repo]["load_run_s"] = round(time.perf_counter() - start, 2)
    assert 0 < len(result.mesh.faces) <= 600


def test_cli_builds_one_profile_and_refuses_a_file_as_folder(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "pipelines.twins", "build", str(target), "--profile", "quality"],
                          capture_output=True, text=True, cwd=root, timeout=300)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "pipelines.twins", "build", str(tmp_path / "m"), "--profile", "nope"],
                          capture_output=True, text=True, cwd=root, timeout=300)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
