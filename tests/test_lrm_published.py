"""TripoSR as published: config.yaml checked against the network, strict TripoSR key names, the
position-embedding rule it was trained with, its preprocessing, and safetensors-only loading."""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from pipelines.mesh.lrm import (
    CheckpointMismatch,
    LargeReconstructionModel,
    LRMBackend,
    condition_image,
    convert_triposr_checkpoint,
    map_triposr_state_dict,
    parse_triposr_config,
    to_triposr_key,
    triposr_config_dict,
)
from pipelines.twins.triposr import build_triposr

PUBLISHED_CONFIG = """\
cond_image_size: 512

image_tokenizer_cls: tsr.models.tokenizers.image.DINOSingleImageTokenizer
image_tokenizer:
  pretrained_model_name_or_path: "facebook/dino-vitb16"

tokenizer_cls: tsr.models.tokenizers.triplane.Triplane1DTokenizer
tokenizer:
  plane_size: 32
  num_channels: 1024

backbone_cls: tsr.models.transformer.transformer_1d.Transformer1D
backbone:
  in_channels: ${tokenizer.num_channels}
  num_attention_heads: 16
  attention_head_dim: 64
  num_layers: 16
  cross_attention_dim: 768

post_processor_cls: tsr.models.network_utils.TriplaneUpsampleNetwork
post_processor:
  in_channels: 1024
  out_channels: 40

decoder_cls: tsr.models.network_utils.NeRFMLP
decoder:
  in_channels: 120 # 3 * 40
  n_neurons: 64
  n_hidden_layers: 9
  activation: silu

renderer_cls: tsr.models.nerf_renderer.TriplaneNeRFRenderer
renderer:
  radius: 0.87 # slightly larger than 0.5 * sqrt(3)
  feature_reduction: concat
  density_activation: exp
  density_bias: -1.0
  num_samples_per_ray: 128
"""


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("triposr") / "stabilityai" / "TripoSR"
    build_triposr(path, seed=0)
    return path


@pytest.fixture(scope="module")
def converted(twin, tmp_path_factory) -> Path:
    return convert_triposr_checkpoint(twin, tmp_path_factory.mktemp("converted"))


def test_published_config_gives_the_published_architecture():
    cfg = parse_triposr_config(PUBLISHED_CONFIG)
    assert (cfg.cond_image_size, cfg.plane_size, cfg.plane_channels) == (512, 32, 1024)
    assert (cfg.num_layers, cfg.num_heads, cfg.head_dim) == (16, 16, 64)
    assert (cfg.upsample_channels, cfg.mlp_neurons, cfg.mlp_layers, cfg.mlp_activation) == (40, 64, 9, "silu")
    assert cfg.vit["hidden_size"] == 768 and cfg.vit["patch_size"] == 16
    assert (cfg.radius, cfg.density_bias, cfg.feature_reduction) == (0.87, -1.0, "concat")
    # The published network has 549 weight tensors and about 419 M parameters.
    with torch.device("meta"):
        model = LargeReconstructionModel(cfg)
    assert len(model.state_dict()) == 549
    assert 415e6 < sum(p.numel() for p in model.parameters()) < 425e6


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["backbone"].update(cross_attention_dim=512), "cross_attention_dim is 512"),
    (lambda c: c["backbone"].update(in_channels=512), "backbone.in_channels is 512"),
    (lambda c: c["decoder"].update(in_channels=40), "decoder.in_channels is 40"),
    (lambda c: c["decoder"].update(activation="tanh"), "decoder.activation is 'tanh'"),
    (lambda c: c["renderer"].update(density_activation="trunc_exp"), "density_activation is 'trunc_exp'"),
    (lambda c: c["backbone"].update(norm_type="ada_norm"), "norm_type is 'ada_norm'"),
    (lambda c: c["tokenizer"].update(plane_sizes=32), "unknown keys \\['plane_sizes'\\]"),
    (lambda c: c.update(decoder_cls="my.Decoder"), "decoder_cls is 'my.Decoder'"),
    (lambda c: c["image_tokenizer"].update(pretrained_model_name_or_path="facebook/dinov2-large"),
     "pretrained_model_name_or_path is 'facebook/dinov2-large'"),
    (lambda c: c.update(cond_image_size=500), "multiple of the ViT patch size 16"),
    (lambda c: c.pop("renderer"), "missing keys \\['renderer'\\]"),
])
def test_config_that_does_not_fit_the_network_is_refused(edit, message):
    raw = yaml.safe_load(PUBLISHED_CONFIG)
    edit(raw)
    with pytest.raises(CheckpointMismatch, match=message):
        parse_triposr_config(raw)


def test_twin_is_published_layout_with_original_key_names(twin):
    assert sorted(p.name for p in twin.iterdir()) == ["config.yaml", "model.ckpt"]
    state = torch.load(twin / "model.ckpt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert "image_tokenizer.model.encoder.layer.0.attention.attention.query.weight" in state
    assert "image_tokenizer.model.encoder.layer.1.output.dense.weight" in state
    assert "backbone.transformer_blocks.0.attn2.to_k.weight" in state
    assert "decoder.layers.0.weight" in state and "tokenizer.embeddings" in state
    raw = yaml.safe_load((twin / "config.yaml").read_text())
    assert raw["backbone"]["in_channels"] == "${tokenizer.num_channels}"  # interpolated as published
    cfg = parse_triposr_config(twin / "config.yaml")
    with torch.device("meta"):
        model = LargeReconstructionModel(cfg)
    assert {to_triposr_key(k) for k in model.state_dict()} == set(state)


def test_converted_twin_loads_strictly_and_matches_the_pickle(twin, converted):
    from safetensors.torch import load_file

    assert sorted(p.name for p in converted.iterdir()) == ["config.yaml", "model.safetensors"]
    pickle = torch.load(twin / "model.ckpt", weights_only=True)
    tensors = load_file(str(converted / "model.safetensors"))
    assert set(tensors) == set(pickle)
    assert all(torch.equal(tensors[k], pickle[k]) for k in pickle)
    model = LargeReconstructionModel.load(converted)
    assert model.config.cond_image_size == 64 and model.config.num_layers == 2
    loaded = model.state_dict()
    for key, value in map_triposr_state_dict(pickle, model).items():
        assert torch.equal(loaded[key], value), key


def test_folder_with_only_the_pickle_is_refused(twin):
    with pytest.raises(CheckpointMismatch, match="pickled model.ckpt only.*convert_triposr_checkpoint"):
        LargeReconstructionModel.load(twin)


def _edited_copy(twin: Path, dst: Path, edit) -> Path:
    shutil.copytree(twin, dst)
    state = torch.load(dst / "model.ckpt", weights_only=True)
    edit(state)
    torch.save(state, dst / "model.ckpt")
    return dst


def test_missing_extra_or_misshaped_weights_fail_clearly(twin, tmp_path):
    key = "backbone.transformer_blocks.1.attn1.to_q.weight"
    missing = _edited_copy(twin, tmp_path / "missing", lambda s: s.pop(key))
    with pytest.raises(CheckpointMismatch, match=f"1 weights missing \\(e.g. {key}\\)"):
        convert_triposr_checkpoint(missing, tmp_path / "out1")
    assert not (tmp_path / "out1" / "model.safetensors").exists()
    extra = _edited_copy(twin, tmp_path / "extra", lambda s: s.update({"backbone.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointMismatch, match="1 unexpected entries \\(e.g. backbone.extra.weight\\)"):
        convert_triposr_checkpoint(extra, tmp_path / "out2")
    shaped = _edited_copy(twin, tmp_path / "shape", lambda s: s.update({"tokenizer.embeddings": torch.zeros(3, 32, 4, 4)}))
    with pytest.raises(CheckpointMismatch, match="shape mismatches .*tokenizer.embeddings"):
        convert_triposr_checkpoint(shaped, tmp_path / "out3")
    # Known non-parameter entries are dropped, not refused.
    constants = _edited_copy(twin, tmp_path / "constants", lambda s: s.update(
        {"image_tokenizer.image_mean": torch.zeros(1, 1, 3, 1, 1), "renderer.dummy": torch.zeros(1)}))
    out = convert_triposr_checkpoint(constants, tmp_path / "out4")
    LargeReconstructionModel.load(out)


def test_config_mismatching_the_checkpoint_is_refused(twin, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(twin, bad)
    raw = yaml.safe_load((bad / "config.yaml").read_text())
    raw["backbone"]["num_layers"] = 3
    (bad / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(CheckpointMismatch, match="weights missing \\(e.g. backbone.transformer_blocks.2"):
        convert_triposr_checkpoint(bad, tmp_path / "out")


class Payload:
    """An arbitrary object: weights_only unpickling must refuse it."""


def test_non_tensor_pickle_is_refused(twin, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(twin, bad)
    torch.save({"state_dict": Payload()}, bad / "model.ckpt")
    with pytest.raises(CheckpointMismatch, match="not a plain tensor checkpoint"):
        convert_triposr_checkpoint(bad, tmp_path / "out")
    torch.save({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, bad / "model.ckpt")
    with pytest.raises(CheckpointMismatch, match="not a flat state dict of tensors"):
        convert_triposr_checkpoint(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_key_map_follows_the_installed_vit_layout():
    """TripoSR names map to transformers-5 names when the ViT uses them, and stay as they are on a
    transformers-4 layout (a model whose keys are TripoSR's own)."""
    state = {
        "image_tokenizer.model.encoder.layer.3.attention.attention.query.weight": torch.zeros(1),
        "image_tokenizer.model.encoder.layer.3.attention.output.dense.bias": torch.zeros(1),
        "image_tokenizer.model.encoder.layer.3.intermediate.dense.weight": torch.zeros(1),
        "image_tokenizer.model.encoder.layer.3.output.dense.weight": torch.zeros(1),
        "image_tokenizer.model.pooler.dense.weight": torch.zeros(1),
        "image_tokenizer.image_mean": torch.zeros(1),
    }

    class Layout:
        def __init__(self, keys):
            self.keys = keys

        def state_dict(self):
            return dict.fromkeys(self.keys)

    v4 = Layout([k for k in state if k != "image_tokenizer.image_mean"])
    assert map_triposr_state_dict(state, v4) == {k: state[k] for k in v4.keys}
    v5 = Layout(["image_tokenizer.model.layers.0.attention.q_proj.weight",
                 "image_tokenizer.model.layers.0.attention.o_proj.weight",
                 "image_tokenizer.model.layers.0.mlp.fc1.weight", "image_tokenizer.model.layers.0.mlp.fc2.weight"])
    assert set(map_triposr_state_dict(state, v5)) == {
        "image_tokenizer.model.layers.3.attention.q_proj.weight",
        "image_tokenizer.model.layers.3.attention.o_proj.bias",
        "image_tokenizer.model.layers.3.mlp.fc1.weight",
        "image_tokenizer.model.layers.3.mlp.fc2.weight",
        "image_tokenizer.model.pooler.dense.weight",
    }
    for key in map_triposr_state_dict(state, v5):
        assert to_triposr_key(key) in state


def reference_interpolation_4_35(position_embeddings, patch_size, height, width):
    """transformers 4.35 ViTEmbeddings.interpolate_pos_encoding, written out from its source."""
    num_positions = position_embeddings.shape[1] - 1
    class_pos_embed = position_embeddings[:, 0]
    patch_pos_embed = position_embeddings[:, 1:]
    dim = position_embeddings.shape[-1]
    h0 = height // patch_size
    w0 = width // patch_size
    h0, w0 = h0 + 0.1, w0 + 0.1
    patch_pos_embed = patch_pos_embed.reshape(1, int(math.sqrt(num_positions)), int(math.sqrt(num_positions)), dim)
    patch_pos_embed = patch_pos_embed.permute(0, 3, 1, 2)
    patch_pos_embed = torch.nn.functional.interpolate(
        patch_pos_embed,
        scale_factor=(h0 / math.sqrt(num_positions), w0 / math.sqrt(num_positions)),
        mode="bicubic",
        align_corners=False,
    )
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def test_vit_uses_the_position_embedding_rule_triposr_was_trained_with(converted):
    model = LargeReconstructionModel.load(converted)
    vit = model.image_tokenizer.model
    patch = model.config.vit["patch_size"]
    size = model.config.cond_image_size  # 64 px with 8 px patches: an 8x8 grid from a 4x4 table
    table = vit.embeddings.position_embeddings.detach()
    expected = reference_interpolation_4_35(table, patch, size, size)
    pixels = torch.rand(1, 3, size, size)
    with torch.no_grad():
        got = vit.embeddings(pixels, interpolate_pos_encoding=True)
        patches = vit.embeddings.patch_embeddings.projection(pixels).flatten(2).transpose(1, 2)
        tokens = torch.cat([vit.embeddings.cls_token, patches], dim=1)
    assert torch.allclose(got, tokens + expected, atol=1e-6)
    # The size-based rule of later transformers versions differs: the test can tell them apart.
    by_size = torch.nn.functional.interpolate(table[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2),
                                              size=(8, 8), mode="bicubic", align_corners=False)
    assert (by_size.permute(0, 2, 3, 1).reshape(1, 64, -1) - expected[:, 1:]).abs().max() > 1e-4


def _soft_disc(size=(200, 150), box=(60, 30, 140, 120)) -> Image.Image:
    """An RGBA picture: a red ellipse with a soft (blurred) alpha edge on a transparent background."""
    from PIL import ImageFilter

    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).ellipse(box, fill=255)
    alpha = alpha.filter(ImageFilter.GaussianBlur(3))
    rgba = Image.new("RGBA", size, (200, 30, 30, 0))
    rgba.putalpha(alpha)
    return rgba


def test_preprocessing_frames_at_85_percent_with_soft_alpha_on_grey():
    image = _soft_disc()
    pixels, source, framed = condition_image(image, size=64)
    assert source == "alpha" and pixels.shape == (1, 3, 64, 64)
    rgba = np.asarray(image)
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    object_side = max(ys.max() - ys.min(), xs.max() - xs.min())
    assert framed.size[0] == framed.size[1] == int(object_side / 0.85)
    frame = np.asarray(framed).astype(int)
    assert (frame[0, 0] == 127).all() and (frame[-1, -1] == 127).all()  # 0.5 grey, truncated as TripoSR does
    # A soft edge pixel is the alpha blend of its colour and the grey, not a hard cut.
    row = frame[frame.shape[0] // 2, :, 0]
    assert len(set(row.tolist())) > 5 and row.min() >= 127 and row.max() <= 200
    # The 64-px condition image is the antialiased resize of the framed one.
    expected = torch.nn.functional.interpolate(torch.from_numpy(frame.astype(np.float32) / 255).permute(2, 0, 1)[None],
                                               (64, 64), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(pixels, expected)


def test_plain_backdrop_is_cut_out_and_framed_the_same_way():
    image = Image.new("RGB", (160, 100), "white")
    ImageDraw.Draw(image).rectangle((40, 20, 119, 79), fill=(20, 90, 160))
    _, source, framed = condition_image(image, size=32)
    assert source == "threshold"
    frame = np.asarray(framed)
    inside = (np.abs(frame.astype(int) - [20, 90, 160]).max(axis=-1) < 4)
    ys, xs = np.nonzero(inside)
    assert abs((xs.max() - xs.min() + 1) / frame.shape[1] - 0.85) < 0.03
    assert (frame[0, 0] == 127).all()


def test_reconstruction_makes_a_textured_glb_at_the_asked_grid(converted):
    import trimesh

    from pipelines.mesh import MeshOptions, export_glb, load_mesh_bytes

    backend = LRMBackend.load(converted, model_name="stabilityai/TripoSR")
    image = _soft_disc()
    small = backend.reconstruct(image, MeshOptions(grid=20, face_budget=5000, texture_size=64))
    large = backend.reconstruct(image, MeshOptions(grid=40, face_budget=5000, texture_size=64))
    assert small.params["grid"] == 20 and large.params["grid"] == 40
    assert large.params["faces_in"] > 2 * small.params["faces_in"]  # the field is sampled on the asked grid
    glb = load_mesh_bytes(export_glb(large.mesh))
    assert isinstance(glb.visual, trimesh.visual.TextureVisuals)
    assert glb.visual.material.baseColorTexture.size == (64, 64)
    assert large.params["mask"] == "alpha" and large.params["foreground_ratio"] == 0.85


def test_config_round_trip_of_the_twin(twin):
    cfg = parse_triposr_config(twin / "config.yaml")
    again = parse_triposr_config(triposr_config_dict(cfg, "design-studio/tiny-dino-vit"))
    assert again == cfg


TRIPOSR_SIDE = '''
import json, sys, types
for name in ("rembg", "imageio", "torchmcubes"):  # imported by TripoSR's modules, unused here
    module = types.ModuleType(name)
    module.marching_cubes = None
    sys.modules[name] = module
import torch
import tsr.models.tokenizers.image as image_module
from tsr.system import TSR

twin, vit_config, out = sys.argv[1:4]
image_module.hf_hub_download = lambda repo_id, filename: vit_config  # the twin ViT's config.json, offline
model = TSR.from_pretrained(twin, "config.yaml", "model.ckpt").eval()  # load_state_dict: strict
reference = torch.load(out)
with torch.no_grad():
    codes = model([reference["image"]], device="cpu")
    density = model.renderer.query_triplane(model.decoder, reference["points"], codes[0])["density_act"][:, 0]
torch.save({"codes": codes, "density": density}, out)
'''


@pytest.mark.skipif("TRIPOSR_PYTHONPATH" not in os.environ,
                    reason="needs TripoSR's source with its pinned transformers 4.35, omegaconf and einops on "
                           "TRIPOSR_PYTHONPATH")
def test_matches_triposr_own_code(twin, converted, tmp_path):
    """TripoSR's own code (on the PYTHONPATH given, e.g. its tsr/ folder + transformers 4.35) loads
    the twin strictly and computes the same triplanes and densities as this implementation."""
    import json
    import subprocess
    import sys

    from pipelines.mesh.lrm import IMAGE_TOKENIZERS

    vit = tmp_path / "vit.json"
    vit.write_text(json.dumps({**IMAGE_TOKENIZERS["design-studio/tiny-dino-vit"], "model_type": "vit"}))
    torch.manual_seed(0)
    image, points = torch.rand(64, 64, 3), torch.rand(500, 3) * 1.6 - 0.8
    exchange = tmp_path / "exchange.pt"
    torch.save({"image": image, "points": points}, exchange)
    script = tmp_path / "triposr_side.py"
    script.write_text(TRIPOSR_SIDE)
    env = {**os.environ, "PYTHONPATH": os.environ["TRIPOSR_PYTHONPATH"] + os.pathsep + str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(script), str(twin), str(vit), str(exchange)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = torch.load(exchange)
    model = LargeReconstructionModel.load(converted)
    with torch.no_grad():
        codes = model(image.permute(2, 0, 1)[None])
        density, _ = model.query(codes[0], points)
    assert torch.allclose(codes, theirs["codes"], atol=1e-6)
    assert torch.allclose(density, theirs["density"], rtol=1e-4)
