"""Twins of ``VAST-AI/TripoSG`` and ``VAST-AI/TripoSG-scribble``: the published folder layout and config keys,
narrow and shallow, random weights, so the real loading and generation code runs offline in seconds.

Layout: ``model_index.json``, ``transformer/`` and ``vae/`` (diffusers configs + safetensors; the VAE's
config keeps its published class name ``Tripo2VAEModel``), ``image_encoder_dinov2/`` (``Dinov2Model``),
``feature_extractor_dinov2/`` (``BitImageProcessor`` config), ``scheduler/`` (the published
``RectifiedFlowScheduler`` config keys) and, for scribble, ``tokenizer/`` + ``text_encoder/`` (CLIP).

Random weights alone give a field with no surface in the box, so the VAE decoder's query path
carries a planted round prior (the sum of the first-octave cosines of the query point, which is
largest at the centre); the attention and feed-forward outputs of that block are scaled down, not
removed, so the latents, and through them the image, still move the surface.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

TRIPOSG_REPO = "VAST-AI/TripoSG"
TRIPOSG_SCRIBBLE_REPO = "VAST-AI/TripoSG-scribble"
#: Bumped whenever the twins change, so cached copies are rebuilt.
TWIN_VERSION = "2"
#: Width of the tiny DINOv2 encoder's tokens (the published model: 1024, dinov2-large).
DINO_WIDTH = 32
#: Width of the tiny CLIP text encoder's tokens (scribble only).
CLIP_WIDTH = 32
LATENT_CHANNELS = 16
EMBED_FREQUENCY = 8
PRIOR_RADIUS = 0.6

IMAGE_MEAN = [0.485, 0.456, 0.406]
IMAGE_STD = [0.229, 0.224, 0.225]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def tiny_vae(seed: int = 0):
    """A narrow ``TripoSGVAEModel`` whose decoder answers with a planted round field."""
    import torch

    from ..mesh.triposg.models import TripoSGVAEModel

    torch.manual_seed(seed)
    vae = TripoSGVAEModel(in_channels=3, latent_channels=LATENT_CHANNELS, num_attention_heads=4, width_encoder=32,
                          width_decoder=64, num_layers_encoder=1, num_layers_decoder=2, embedding_type="frequency",
                          embed_frequency=EMBED_FREQUENCY, embed_include_pi=False).eval()
    dec = vae.decoder
    f = EMBED_FREQUENCY
    cos_first_octave = [3 + 3 * f + axis * f for axis in range(3)]  # cos(1 * x), cos(1 * y), cos(1 * z)
    level = 2.0 + math.cos(PRIOR_RADIUS)  # the sum of the three at PRIOR_RADIUS along an axis
    with torch.no_grad():
        dec.proj_query.weight.mul_(0.02)
        dec.proj_query.bias.zero_()
        dec.proj_query.weight[:3] = 0.0
        dec.proj_query.weight[0, cos_first_octave] = 1.0
        dec.proj_query.bias[:3] = torch.tensor([-level, 0.5, -0.5])  # channel 0 = signal; 1, 2 keep the norm's scale
        last = dec.blocks[-1]
        for linear in (last.attn2.to_out[0], last.ff.net[2]):
            linear.weight.mul_(0.05)
            linear.bias.zero_()
        dec.proj_out.weight.zero_()
        dec.proj_out.weight[0, 0] = -1.0  # the decoder negates: inside positive = channel 0 positive
        dec.proj_out.bias.zero_()
    return vae


def tiny_transformer(seed: int = 0, *, scribble: bool = False):
    import torch

    from ..mesh.triposg.models import TripoSGDiTModel

    torch.manual_seed(seed + 1)
    if scribble:  # text tokens on the first cross-attention, sketch tokens on the second
        return TripoSGDiTModel(num_attention_heads=4, width=64, in_channels=LATENT_CHANNELS, num_layers=3,
                               cross_attention_dim=CLIP_WIDTH, use_cross_attention_2=True,
                               cross_attention_2_dim=DINO_WIDTH).eval()
    return TripoSGDiTModel(num_attention_heads=4, width=64, in_channels=LATENT_CHANNELS, num_layers=3,
                           cross_attention_dim=DINO_WIDTH).eval()


def tiny_dinov2(seed: int = 0):
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed + 2)
    # image_size above the processor's crop, as published (518 vs 224): position embeddings are interpolated.
    return Dinov2Model(Dinov2Config(hidden_size=DINO_WIDTH, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
                                    image_size=70, patch_size=14)).eval()


#: transformers 5 Dinov2 names -> the names in the published checkpoint (saved with transformers 4);
#: transformers 5 maps them back on load.
DINOV2_PUBLISHED_NAMES = {
    ".attention.q_proj.": ".attention.attention.query.",
    ".attention.k_proj.": ".attention.attention.key.",
    ".attention.v_proj.": ".attention.attention.value.",
    ".attention.o_proj.": ".attention.output.dense.",
}


def save_dinov2(model, directory: Path) -> None:
    """``save_pretrained``, then the weight names rewritten to the published checkpoint's."""
    from safetensors.torch import load_file, save_file

    model.save_pretrained(directory, safe_serialization=True)
    path = directory / "model.safetensors"
    renamed = {}
    for key, value in load_file(str(path)).items():
        for new, old in DINOV2_PUBLISHED_NAMES.items():
            key = key.replace(new, old)
        renamed[key] = value
    save_file(renamed, str(path), metadata={"format": "pt"})


def feature_extractor_config() -> dict:
    """``BitImageProcessor`` settings as published (resize, centre crop, ImageNet normalisation), smaller."""
    return {
        "image_processor_type": "BitImageProcessor", "do_resize": True, "size": {"shortest_edge": 64},
        "resample": 3, "do_center_crop": True, "crop_size": {"height": 56, "width": 56}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": IMAGE_MEAN, "image_std": IMAGE_STD,
        "do_convert_rgb": True,
    }


def scheduler_config() -> dict:
    return {"_class_name": "RectifiedFlowScheduler", "_diffusers_version": "0.32.2", "num_train_timesteps": 1000,
            "shift": 1.0, "use_dynamic_shifting": False}


def _build(directory: Path, seed: int, scribble: bool) -> Path:
    from ..devices import quiet_libraries

    quiet_libraries()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tiny_transformer(seed, scribble=scribble).save_pretrained(directory / "transformer", safe_serialization=True)
    tiny_vae(seed).save_pretrained(directory / "vae", safe_serialization=True)
    vae_config = json.loads((directory / "vae" / "config.json").read_text())
    vae_config["_class_name"] = "Tripo2VAEModel"  # the published name of the VAE class
    _write_json(directory / "vae" / "config.json", vae_config)
    save_dinov2(tiny_dinov2(seed), directory / "image_encoder_dinov2")
    _write_json(directory / "feature_extractor_dinov2" / "preprocessor_config.json", feature_extractor_config())
    _write_json(directory / "scheduler" / "scheduler_config.json", scheduler_config())
    index = {
        "_class_name": "TripoSGScribblePipeline" if scribble else "TripoSGPipeline",
        "_diffusers_version": "0.32.2",
        "feature_extractor_dinov2": ["transformers", "BitImageProcessor"],
        "image_encoder_dinov2": ["transformers", "Dinov2Model"],
        "scheduler": ["triposg", "RectifiedFlowScheduler"],
        "transformer": ["triposg", "TripoSGDiTModel"],
        "vae": ["triposg", "TripoSGVAEModel"],
    }
    if scribble:
        import torch
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        from ..testing import tiny_tokenizer

        index.update(tokenizer=["transformers", "CLIPTokenizer"], text_encoder=["transformers", "CLIPTextModelWithProjection"])
        tiny_tokenizer().save_pretrained(directory / "tokenizer")
        torch.manual_seed(seed + 3)
        CLIPTextModelWithProjection(CLIPTextConfig(
            bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=CLIP_WIDTH, projection_dim=CLIP_WIDTH,
            intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=514,
            max_position_embeddings=77,
        )).eval().save_pretrained(directory / "text_encoder", safe_serialization=True)
    _write_json(directory / "model_index.json", index)
    return directory


def build_triposg_twin(directory: str | Path, seed: int = 0) -> Path:
    """A ``VAST-AI/TripoSG`` twin at ``directory`` (image -> shape)."""
    return _build(Path(directory), seed, scribble=False)


def build_triposg_scribble_twin(directory: str | Path, seed: int = 0) -> Path:
    """A ``VAST-AI/TripoSG-scribble`` twin at ``directory`` (sketch + prompt -> shape)."""
    return _build(Path(directory), seed, scribble=True)
