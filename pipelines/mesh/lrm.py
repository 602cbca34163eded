"""A feed-forward large reconstruction model (TripoSR as published): one image -> triplane NeRF -> mesh.

The network, written here in torch: a DINO ViT image tokenizer (transformers ``ViTModel``), learnt
triplane tokens refined by a transformer that cross-attends to the image tokens (diffusers
``BasicTransformerBlock``), a transposed-convolution triplane upsampler, and a NeRF MLP decoding
density and colour from the three planes' features. Marching cubes runs on the density grid and the
colour field is baked into a texture.

A TripoSR folder is read as published: ``config.yaml`` is parsed and checked against what this
network implements (the architecture is built from it; unknown or unsupported values are refused),
and the weights load strictly under TripoSR's own key names (transformers-4 ViT names, mapped to
whichever names the installed transformers uses). TripoSR ships a pickled ``model.ckpt``;
``convert_triposr_checkpoint`` turns it into ``model.safetensors`` once (``torch.load`` with
``weights_only=True``), and the loader reads safetensors only. The image goes through TripoSR's
preprocessing (object framed at 85 % of the square, soft alpha over 0.5 grey, antialiased bilinear
resize) and the ViT position embeddings are interpolated by the rule TripoSR was trained with.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidInput
from .base import MeshOptions, MeshResult, check_options


class CheckpointMismatch(InvalidInput):
    """A TripoSR config or checkpoint does not describe the network this module builds."""


#: ViT settings of facebook/dino-vitb16 (the published model's image tokenizer, from its config.json).
DINO_VITB16 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                   image_size=224, patch_size=16, layer_norm_eps=1e-12, qkv_bias=True)

#: Image tokenizers a TripoSR ``config.yaml`` may name (``image_tokenizer.pretrained_model_name_or_path``).
#: TripoSR fetches the named ViT's config.json from the hub at load time; the settings are kept here
#: instead, so loading needs no network. The second entry is the random-weight twin's narrow ViT.
IMAGE_TOKENIZERS: dict[str, dict] = {
    "facebook/dino-vitb16": DINO_VITB16,
    "design-studio/tiny-dino-vit": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=37, image_size=32, patch_size=8,
                                        layer_norm_eps=1e-12, qkv_bias=True),
}

#: The module classes a TripoSR config must name for this implementation to apply.
TRIPOSR_CLASSES = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}

#: How much of the square frame TripoSR's preprocessing gives the object (its ``--foreground-ratio``).
FOREGROUND_RATIO = 0.85


@dataclass
class LRMConfig:
    """Every knob of the network; the defaults are the published TripoSR architecture."""

    cond_image_size: int = 512
    vit: dict = field(default_factory=lambda: dict(DINO_VITB16))
    plane_size: int = 32
    plane_channels: int = 1024
    num_layers: int = 16
    num_heads: int = 16
    head_dim: int = 64
    norm_num_groups: int = 32
    attention_bias: bool = False
    activation_fn: str = "geglu"
    upsample_channels: int = 40
    mlp_neurons: int = 64
    mlp_layers: int = 9
    mlp_activation: str = "silu"
    feature_reduction: str = "concat"
    radius: float = 0.87
    density_bias: float = -1.0
    threshold: float = 25.0
    background: float = 0.5  # the grey the model was trained to see behind the object
    foreground_ratio: float = FOREGROUND_RATIO
    # Frame of the reconstructed object (as TripoSR's own viewer rotates it): z up, front towards -x.
    up: str = "z"
    front: str = "-x"


# ----------------------------------------------------------------------------- TripoSR config.yaml
_INTERPOLATION = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


def _resolve(node, root, where: str):
    """Resolve OmegaConf-style ``${a.b}`` references (whole-value only, as TripoSR's config uses them)."""
    if isinstance(node, dict):
        return {k: _resolve(v, root, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    if isinstance(node, str):
        match = _INTERPOLATION.match(node.strip())
        if match:
            value = root
            for part in match.group(1).split("."):
                if not isinstance(value, dict) or part not in value:
                    raise CheckpointMismatch(f"config.yaml: {where} refers to {node!r}, which is not in the file")
                value = value[part]
            return _resolve(value, root, where)
    return node


def _section(raw: dict, name: str, required: dict, optional: dict) -> dict:
    """One config section with its keys checked: ``required``/``optional`` map key -> type (or tuple)."""
    section = raw.get(name)
    if not isinstance(section, dict):
        raise CheckpointMismatch(f"config.yaml: section {name!r} is missing or not a mapping")
    unknown = sorted(set(section) - set(required) - set(optional))
    if unknown:
        raise CheckpointMismatch(f"config.yaml: {name} has unknown keys {unknown}; accepted: "
                                 f"{sorted(set(required) | set(optional))}")
    for key, kind in {**required, **optional}.items():
        if key not in section:
            if key in required:
                raise CheckpointMismatch(f"config.yaml: {name}.{key} is missing")
            continue
        value = section[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = section[key] = float(value)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise CheckpointMismatch(f"config.yaml: {name}.{key} must be a positive whole number, got {value!r}")
        if kind is not int and value is not None and not isinstance(value, kind):
            raise CheckpointMismatch(f"config.yaml: {name}.{key} has the wrong type: {value!r}")
    return section


def _require(name: str, value, accepted) -> None:
    if value not in accepted:
        raise CheckpointMismatch(f"config.yaml: {name} is {value!r}; this implementation supports "
                                 f"{', '.join(repr(a) for a in accepted)}")


def parse_triposr_config(source: str | Path | dict) -> LRMConfig:
    """Check a TripoSR ``config.yaml`` (a ``Path``, YAML text or a mapping) and return the network it describes.

    Refuses, with ``CheckpointMismatch`` naming the key, anything this implementation would build
    differently: other module classes, unknown keys, unsupported activations or options, and sizes
    that do not fit together (e.g. a backbone width that is not the triplane width).
    """
    import yaml

    if isinstance(source, dict):
        raw = source
    else:
        text = source.read_text() if isinstance(source, Path) else str(source)
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CheckpointMismatch(f"config.yaml is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointMismatch("config.yaml must be a mapping of TripoSR's settings")
    raw = _resolve(raw, raw, "")
    expected = {"cond_image_size", *TRIPOSR_CLASSES, *(k[: -len("_cls")] for k in TRIPOSR_CLASSES)}
    unknown = sorted(set(raw) - expected)
    missing = sorted(expected - set(raw))
    if unknown or missing:
        raise CheckpointMismatch(f"config.yaml: unknown keys {unknown}, missing keys {missing}; a TripoSR config "
                                 f"has {sorted(expected)}")
    for key, cls in TRIPOSR_CLASSES.items():
        _require(key, raw[key], (cls,))

    img = _section(raw, "image_tokenizer", {"pretrained_model_name_or_path": str},
                   {"enable_gradient_checkpointing": bool})
    _require("image_tokenizer.pretrained_model_name_or_path", img["pretrained_model_name_or_path"], tuple(IMAGE_TOKENIZERS))
    vit = dict(IMAGE_TOKENIZERS[img["pretrained_model_name_or_path"]])

    tok = _section(raw, "tokenizer", {"plane_size": int, "num_channels": int}, {})
    bb = _section(raw, "backbone", {"in_channels": int, "cross_attention_dim": int},
                  {"num_attention_heads": int, "attention_head_dim": int, "out_channels": (int, type(None)),
                   "num_layers": int, "dropout": float, "norm_num_groups": int, "attention_bias": bool,
                   "activation_fn": str, "only_cross_attention": bool, "double_self_attention": bool,
                   "upcast_attention": bool, "norm_type": str, "norm_elementwise_affine": bool,
                   "gradient_checkpointing": bool})
    channels = tok["num_channels"]
    if bb["in_channels"] != channels:
        raise CheckpointMismatch(f"config.yaml: backbone.in_channels is {bb['in_channels']} but the triplane "
                                 f"tokens have tokenizer.num_channels = {channels}")
    if bb.get("out_channels") not in (None, channels):
        raise CheckpointMismatch(f"config.yaml: backbone.out_channels is {bb['out_channels']}; it must equal "
                                 f"in_channels ({channels}) or be unset")
    if bb["cross_attention_dim"] != vit["hidden_size"]:
        raise CheckpointMismatch(f"config.yaml: backbone.cross_attention_dim is {bb['cross_attention_dim']} but "
                                 f"the image tokenizer {img['pretrained_model_name_or_path']} gives "
                                 f"{vit['hidden_size']}-wide tokens")
    groups = bb.get("norm_num_groups", 32)
    if channels % groups:
        raise CheckpointMismatch(f"config.yaml: backbone.norm_num_groups {groups} does not divide "
                                 f"in_channels {channels}")
    _require("backbone.activation_fn", bb.get("activation_fn", "geglu"), ("geglu", "gelu", "gelu-approximate"))
    _require("backbone.norm_type", bb.get("norm_type", "layer_norm"), ("layer_norm",))
    for key in ("only_cross_attention", "double_self_attention"):
        _require(f"backbone.{key}", bb.get(key, False), (False,))
    _require("backbone.norm_elementwise_affine", bb.get("norm_elementwise_affine", True), (True,))

    post = _section(raw, "post_processor", {"in_channels": int, "out_channels": int}, {})
    if post["in_channels"] != channels:
        raise CheckpointMismatch(f"config.yaml: post_processor.in_channels is {post['in_channels']} but the "
                                 f"triplanes have {channels} channels")

    render = _section(raw, "renderer", {"radius": float},
                      {"feature_reduction": str, "density_activation": str, "density_bias": float,
                       "color_activation": str, "num_samples_per_ray": int, "randomized": bool})
    reduction = render.get("feature_reduction", "concat")
    _require("renderer.feature_reduction", reduction, ("concat", "mean"))
    # TripoSR's default "trunc_exp" names no function its loader can find: only "exp" runs there.
    _require("renderer.density_activation", render.get("density_activation", "trunc_exp"), ("exp",))
    _require("renderer.color_activation", render.get("color_activation", "sigmoid"), ("sigmoid",))
    if not render["radius"] > 0:
        raise CheckpointMismatch(f"config.yaml: renderer.radius must be positive, got {render['radius']!r}")

    dec = _section(raw, "decoder", {"in_channels": int, "n_neurons": int, "n_hidden_layers": int},
                   {"activation": str, "bias": bool, "weight_init": (str, type(None)), "bias_init": (str, type(None))})
    features = post["out_channels"] * (3 if reduction == "concat" else 1)
    if dec["in_channels"] != features:
        raise CheckpointMismatch(f"config.yaml: decoder.in_channels is {dec['in_channels']} but the renderer "
                                 f"hands it {features} features ({reduction} of 3 planes x {post['out_channels']})")
    _require("decoder.activation", dec.get("activation", "relu"), ("relu", "silu"))
    _require("decoder.bias", dec.get("bias", True), (True,))

    size = raw["cond_image_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % vit["patch_size"]:
        raise CheckpointMismatch(f"config.yaml: cond_image_size must be a positive multiple of the ViT patch "
                                 f"size {vit['patch_size']}, got {size!r}")
    return LRMConfig(
        cond_image_size=size, vit=vit, plane_size=tok["plane_size"], plane_channels=channels,
        num_layers=bb.get("num_layers", 1), num_heads=bb.get("num_attention_heads", 16),
        head_dim=bb.get("attention_head_dim", 88), norm_num_groups=groups,
        attention_bias=bb.get("attention_bias", False), activation_fn=bb.get("activation_fn", "geglu"),
        upsample_channels=post["out_channels"], mlp_neurons=dec["n_neurons"], mlp_layers=dec["n_hidden_layers"],
        mlp_activation=dec.get("activation", "relu"), feature_reduction=reduction, radius=render["radius"],
        density_bias=render.get("density_bias", -1.0),
    )


def triposr_config_dict(config: LRMConfig, image_tokenizer: str) -> dict:
    """The TripoSR ``config.yaml`` mapping describing ``config`` (its image tokenizer named by ``image_tokenizer``)."""
    if IMAGE_TOKENIZERS.get(image_tokenizer) != config.vit:
        raise CheckpointMismatch(f"image tokenizer {image_tokenizer!r} does not have the ViT settings {config.vit}")
    return {
        "cond_image_size": config.cond_image_size,
        "image_tokenizer_cls": TRIPOSR_CLASSES["image_tokenizer_cls"],
        "image_tokenizer": {"pretrained_model_name_or_path": image_tokenizer},
        "tokenizer_cls": TRIPOSR_CLASSES["tokenizer_cls"],
        "tokenizer": {"plane_size": config.plane_size, "num_channels": config.plane_channels},
        "backbone_cls": TRIPOSR_CLASSES["backbone_cls"],
        "backbone": {"in_channels": "${tokenizer.num_channels}", "num_attention_heads": config.num_heads,
                     "attention_head_dim": config.head_dim, "num_layers": config.num_layers,
                     "cross_attention_dim": config.vit["hidden_size"]},
        "post_processor_cls": TRIPOSR_CLASSES["post_processor_cls"],
        "post_processor": {"in_channels": config.plane_channels, "out_channels": config.upsample_channels},
        "decoder_cls": TRIPOSR_CLASSES["decoder_cls"],
        "decoder": {"in_channels": config.upsample_channels * (3 if config.feature_reduction == "concat" else 1),
                    "n_neurons": config.mlp_neurons, "n_hidden_layers": config.mlp_layers,
                    "activation": config.mlp_activation},
        "renderer_cls": TRIPOSR_CLASSES["renderer_cls"],
        "renderer": {"radius": config.radius, "feature_reduction": config.feature_reduction,
                     "density_activation": "exp", "density_bias": config.density_bias, "num_samples_per_ray": 128},
    }


# ----------------------------------------------------------------------------- the network
def triposr_interpolate_pos_encoding(position_embeddings: torch.Tensor, patch_size: int, embeddings: torch.Tensor,
                                     height: int, width: int) -> torch.Tensor:
    """ViT position embeddings for a ``height`` x ``width`` image, by the rule TripoSR was trained with.

    transformers 4.35 (TripoSR's version) resized the patch grid with a *scale factor*
    ``(n + 0.1) / sqrt(N)`` (bicubic, no corner alignment) rather than a target size; later versions
    pass the size, which samples at slightly different points (triplanes ~1e-3 apart).
    """
    num_patches = embeddings.shape[1] - 1
    num_positions = position_embeddings.shape[1] - 1
    if num_patches == num_positions and height == width:
        return position_embeddings
    class_pos = position_embeddings[:, :1]
    patch_pos = position_embeddings[:, 1:]
    dim = embeddings.shape[-1]
    side = math.sqrt(num_positions)
    h0 = height // patch_size + 0.1
    w0 = width // patch_size + 0.1
    grid = patch_pos.reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=(h0 / side, w0 / side), mode="bicubic", align_corners=False)
    if grid.shape[-2:] != (int(h0), int(w0)):
        raise CheckpointMismatch(f"position embeddings resized to {tuple(grid.shape[-2:])}, expected {(int(h0), int(w0))}")
    return torch.cat((class_pos, grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)


def _interpolate_hook(embeddings: nn.Module, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return triposr_interpolate_pos_encoding(embeddings.position_embeddings, embeddings.triposr_patch_size, tokens,
                                            height, width)


class ImageTokenizer(nn.Module):
    """DINO ViT features of the (normalised) condition image, as (B, N, C) tokens."""

    def __init__(self, vit: dict):
        super().__init__()
        from transformers import ViTConfig, ViTModel

        self.model = ViTModel(ViTConfig(**vit))
        # The ViT calls this hook for any image size other than its own (the same name and
        # arguments in transformers 4 and 5); bound to the instance, so copies keep their own table.
        embeddings = self.model.embeddings
        embeddings.triposr_patch_size = int(vit["patch_size"])
        embeddings.interpolate_pos_encoding = types.MethodType(_interpolate_hook, embeddings)
        self.register_buffer("image_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = (images - self.image_mean) / self.image_std
        out = self.model(pixel_values=images, interpolate_pos_encoding=True)
        return out.last_hidden_state  # (B, N, C)


class TriplaneTokens(nn.Module):
    """Learnt triplane embeddings (3, C, H, W) flattened into a token sequence and back."""

    def __init__(self, plane_size: int, channels: int):
        super().__init__()
        self.plane_size, self.channels = plane_size, channels
        self.embeddings = nn.Parameter(torch.randn(3, channels, plane_size, plane_size) / math.sqrt(channels))

    def forward(self, batch: int) -> torch.Tensor:
        return self.embeddings.flatten(2).permute(1, 0, 2).reshape(1, self.channels, -1).expand(batch, -1, -1)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        return tokens.reshape(b, self.channels, 3, self.plane_size, self.plane_size).permute(0, 2, 1, 3, 4)


class TriplaneTransformer(nn.Module):
    """Group-norm, project in, transformer blocks (self- then cross-attention), project out, residual."""

    def __init__(self, config: "LRMConfig"):
        super().__init__()
        from diffusers.models.attention import BasicTransformerBlock

        channels, inner = config.plane_channels, config.num_heads * config.head_dim
        self.norm = nn.GroupNorm(config.norm_num_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, config.num_heads, config.head_dim,
                                  cross_attention_dim=config.vit["hidden_size"], activation_fn=config.activation_fn,
                                  attention_bias=config.attention_bias)
            for _ in range(config.num_layers)
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        h = self.proj_in(self.norm(tokens).transpose(1, 2))
        for block in self.transformer_blocks:
            h = block(h, encoder_hidden_states=image_tokens)
        return self.proj_out(h).transpose(1, 2) + tokens


class TriplaneUpsampler(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        b = planes.shape[0]
        up = self.upsample(planes.flatten(0, 1))
        return up.view(b, 3, *up.shape[1:])


class NeRFDecoder(nn.Module):
    """MLP from the three planes' features to density (1) and colour features (3)."""

    def __init__(self, in_channels: int, neurons: int, hidden_layers: int, activation: str = "silu"):
        super().__init__()
        act = {"silu": nn.SiLU, "relu": nn.ReLU}[activation]
        layers: list[nn.Module] = [nn.Linear(in_channels, neurons), act()]
        for _ in range(hidden_layers - 1):
            layers += [nn.Linear(neurons, neurons), act()]
        layers.append(nn.Linear(neurons, 4))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class LargeReconstructionModel(nn.Module):
    """Image -> triplane scene code -> density and colour anywhere in [-radius, radius]^3."""

    def __init__(self, config: LRMConfig):
        super().__init__()
        self.config = config
        self.image_tokenizer = ImageTokenizer(config.vit)
        self.tokenizer = TriplaneTokens(config.plane_size, config.plane_channels)
        self.backbone = TriplaneTransformer(config)
        self.post_processor = TriplaneUpsampler(config.plane_channels, config.upsample_channels)
        features = config.upsample_channels * (3 if config.feature_reduction == "concat" else 1)
        self.decoder = NeRFDecoder(features, config.mlp_neurons, config.mlp_layers, config.mlp_activation)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> triplanes (B, 3, C, 2P, 2P)."""
        image_tokens = self.image_tokenizer(images)
        tokens = self.tokenizer(images.shape[0])
        tokens = self.backbone(tokens, image_tokens)
        return self.post_processor(self.tokenizer.detokenize(tokens))

    def query(self, triplane: torch.Tensor, points: torch.Tensor, chunk: int = 262144) -> tuple[torch.Tensor, torch.Tensor]:
        """(density, rgb) at (N, 3) points for one scene's triplane (3, C, H, W)."""
        densities, colours = [], []
        for start in range(0, len(points), chunk):
            p = points[start : start + chunk] / self.config.radius
            # Plane order as in the published model: xy, xz, yz.
            coords = torch.stack([p[:, [0, 1]], p[:, [0, 2]], p[:, [1, 2]]])[:, None]  # (3, 1, N, 2)
            feats = F.grid_sample(triplane, coords, align_corners=False, mode="bilinear")[:, :, 0]  # (3, C, N)
            if self.config.feature_reduction == "concat":
                feats = feats.permute(2, 0, 1).reshape(p.shape[0], -1)
            else:
                feats = feats.mean(0).t()
            out = self.decoder(feats)
            densities.append(torch.exp(out[:, 0] + self.config.density_bias))
            colours.append(torch.sigmoid(out[:, 1:4]))
        return torch.cat(densities), torch.cat(colours)

    # ------------------------------------------------------------------ weights
    def triposr_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under TripoSR's key names (the same whatever transformers is installed)."""
        return to_triposr_names(self.state_dict())

    def save(self, directory: str | Path) -> None:
        """``config.json`` (this module's settings) + ``model.safetensors`` under TripoSR's key names."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"_class": "LargeReconstructionModel", **asdict(self.config)}, indent=2))
        save_file({k: v.contiguous() for k, v in self.triposr_state_dict().items()}, str(directory / "model.safetensors"))

    def load_triposr_weights(self, state: dict, source: str = "checkpoint") -> "LargeReconstructionModel":
        """Load a TripoSR-named state dict strictly; ``CheckpointMismatch`` lists what does not fit."""
        _check_against(self, state, source)
        mapped = map_triposr_state_dict(state, self)
        self.load_state_dict(mapped, strict=True)
        return self

    @classmethod
    def load(cls, directory: str | Path) -> "LargeReconstructionModel":
        """From a TripoSR folder (``config.yaml`` + ``model.safetensors``) or ours (``config.json`` + same)."""
        directory = Path(directory)
        if (directory / "config.yaml").exists():
            config = parse_triposr_config(directory / "config.yaml")
        elif (directory / "config.json").exists():
            raw = json.loads((directory / "config.json").read_text())
            raw.pop("_class", None)
            unknown = sorted(set(raw) - set(LRMConfig.__dataclass_fields__))
            if unknown:
                raise CheckpointMismatch(f"{directory / 'config.json'} has unknown keys {unknown}")
            config = LRMConfig(**raw)
        else:
            raise FileNotFoundError(f"{directory} holds neither config.yaml (TripoSR) nor config.json")
        weights = directory / "model.safetensors"
        if not weights.exists():
            if (directory / "model.ckpt").exists():
                raise CheckpointMismatch(
                    f"{directory} holds TripoSR's pickled model.ckpt only; the studio loads safetensors: convert it "
                    "once with pipelines.mesh.lrm.convert_triposr_checkpoint(src, dst) (`studio models pull` does)")
            raise FileNotFoundError(f"{directory} has no model.safetensors")
        from safetensors.torch import load_file

        model = cls(config)
        return model.load_triposr_weights(load_file(str(weights)), source=str(weights)).eval()


# ----------------------------------------------------------------------------- key names
#: Entries of a TripoSR checkpoint that are not weights of the network: the ViT normalisation
#: constants (rebuilt here), the renderer (no weights) and the marching-cubes helper's grid.
NON_PARAMETER_KEYS = ("image_tokenizer.image_mean", "image_tokenizer.image_std")
NON_PARAMETER_PREFIXES = ("renderer.", "isosurface_helper.")

#: transformers-4 ViT names (TripoSR's checkpoint) -> names of later transformers; each rule is
#: used only when the installed ViTModel has the new name, so both layouts load.
_VIT_RENAMES = [
    (r"\.encoder\.layer\.(\d+)\.", r".layers.\1.", ".layers.0."),
    (r"\.attention\.attention\.query\.", ".attention.q_proj.", ".attention.q_proj."),
    (r"\.attention\.attention\.key\.", ".attention.k_proj.", ".attention.k_proj."),
    (r"\.attention\.attention\.value\.", ".attention.v_proj.", ".attention.v_proj."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj.", ".attention.o_proj."),
    (r"\.intermediate\.dense\.", ".mlp.fc1.", ".mlp.fc1."),
    (r"(\.(?:layers|encoder\.layer)\.\d+)\.output\.dense\.", r"\1.mlp.fc2.", ".mlp.fc2."),
]
_VIT_RENAMES_BACK = [
    (r"\.layers\.(\d+)\.", r".encoder.layer.\1."),
    (r"\.attention\.q_proj\.", ".attention.attention.query."),
    (r"\.attention\.k_proj\.", ".attention.attention.key."),
    (r"\.attention\.v_proj\.", ".attention.attention.value."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
]


def to_triposr_key(key: str) -> str:
    """This module's key (any transformers version) -> TripoSR's key."""
    if key.startswith("image_tokenizer."):
        for pattern, repl in _VIT_RENAMES_BACK:
            key = re.sub(pattern, repl, key)
    return key


def to_triposr_names(state: dict) -> dict:
    return {to_triposr_key(k): v for k, v in state.items()}


def map_triposr_state_dict(state: dict, model: nn.Module) -> dict:
    """Rename a TripoSR state dict to ``model``'s names; drop the known non-parameter entries."""
    own = set(model.state_dict())
    rules = [(p, r) for p, r, probe in _VIT_RENAMES if any(probe in k for k in own if k.startswith("image_tokenizer."))]
    out = {}
    for key, value in state.items():
        if key in NON_PARAMETER_KEYS or key.startswith(NON_PARAMETER_PREFIXES):
            continue
        if key.startswith("image_tokenizer."):
            for pattern, repl in rules:
                key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def convert_triposr_checkpoint(src_dir: str | Path, dst_dir: str | Path) -> Path:
    """TripoSR's ``config.yaml`` + ``model.ckpt`` -> ``dst_dir`` with ``config.yaml`` + ``model.safetensors``.

    The pickle is read with ``torch.load(weights_only=True)`` (tensors and plain containers only, no
    code), must be a flat state dict, and is checked strictly against the network its config
    describes before anything is written. Keys keep TripoSR's names. Returns ``dst_dir``.
    """
    from safetensors.torch import save_file

    src, dst = Path(src_dir), Path(dst_dir)
    if not (src / "config.yaml").exists() or not (src / "model.ckpt").exists():
        raise FileNotFoundError(f"{src} must hold TripoSR's config.yaml and model.ckpt")
    config = parse_triposr_config(src / "config.yaml")
    try:
        state = torch.load(src / "model.ckpt", map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error: not a plain tensor checkpoint
        raise CheckpointMismatch(f"{src / 'model.ckpt'} is not a plain tensor checkpoint ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointMismatch(f"{src / 'model.ckpt'} is not a flat state dict of tensors")
    state = {k: v for k, v in state.items() if k not in NON_PARAMETER_KEYS and not k.startswith(NON_PARAMETER_PREFIXES)}
    with torch.device("meta"):
        skeleton = LargeReconstructionModel(config)
    _check_against(skeleton, state, src / "model.ckpt")
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / "model.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    tmp.replace(dst / "model.safetensors")
    if src.resolve() != dst.resolve():
        shutil.copy(src / "config.yaml", dst / "config.yaml")
    return dst


def _check_against(model: "LargeReconstructionModel", state: dict, source) -> None:
    mapped = map_triposr_state_dict(state, model)
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    wrong = sorted(k for k in set(own) & set(mapped) if tuple(own[k].shape) != tuple(mapped[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights missing (e.g. {to_triposr_key(missing[0])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected entries (e.g. {to_triposr_key(unexpected[0])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {to_triposr_key(k)}: checkpoint "
                         f"{tuple(mapped[k].shape)}, config {tuple(own[k].shape)})")
        raise CheckpointMismatch(f"{source} does not match the network its config describes: " + "; ".join(parts))


# ----------------------------------------------------------------------------- preprocessing
def frame_foreground(rgba: np.ndarray, ratio: float = FOREGROUND_RATIO) -> np.ndarray:
    """TripoSR's ``resize_foreground``: crop to the alpha > 0 box, pad square, pad so it fills ``ratio``.

    (H, W, 4) uint8 -> (S, S, 4) uint8. The crop ends one pixel before the box's last row and
    column, as TripoSR's does.
    """
    if not 0.0 < ratio <= 1.0:
        raise InvalidInput(f"foreground ratio must be in (0, 1], got {ratio!r}")
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    if len(xs) == 0:
        raise InvalidInput("image is fully transparent: there is no object to make 3D from")
    fg = rgba[ys.min() : ys.max(), xs.min() : xs.max()]
    if fg.shape[0] == 0 or fg.shape[1] == 0:
        raise InvalidInput("the object is a single row or column of pixels; there is nothing to reconstruct")
    size = max(fg.shape[:2])
    h0, w0 = (size - fg.shape[0]) // 2, (size - fg.shape[1]) // 2
    square = np.pad(fg, ((h0, size - fg.shape[0] - h0), (w0, size - fg.shape[1] - w0), (0, 0)))
    framed = int(size / ratio)
    pad0 = (framed - size) // 2
    return np.pad(square, ((pad0, framed - size - pad0), (pad0, framed - size - pad0), (0, 0)))


def composite_on_grey(rgba: np.ndarray, grey: float = 0.5) -> np.ndarray:
    """Soft alpha over a flat grey, truncated to uint8 as TripoSR's run script does (0.5 -> 127)."""
    image = rgba.astype(np.float32) / 255.0
    rgb = image[..., :3] * image[..., 3:4] + (1.0 - image[..., 3:4]) * grey
    return (rgb * 255.0).astype(np.uint8)


def condition_image(image, *, size: int, ratio: float = FOREGROUND_RATIO, grey: float = 0.5):
    """(pixels (1, 3, size, size) in [0, 1], mask source, framed RGB image): TripoSR's preprocessing.

    A soft alpha channel is kept as it is; otherwise the mask comes from the plain-backdrop threshold
    (``pipelines.background.remove_background``). The framed image is
    resized with antialiased bilinear filtering, as TripoSR's ``ImagePreprocessor`` does.
    """
    from PIL import Image

    from ..background import MIN_SIDE, remove_background

    w, h = image.size
    if min(w, h) < MIN_SIDE:
        raise InvalidInput(f"image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed to make 3D")
    rgba = np.array(image.convert("RGBA"))
    alpha = rgba[..., 3]
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha and alpha.min() < 255:
        if alpha.max() == 0:
            raise InvalidInput("image is fully transparent: there is no object to make 3D from")
        source = "alpha"
    else:
        mask, source = remove_background(image.convert("RGB"))
        rgba[..., 3] = np.where(mask, 255, 0).astype(np.uint8)
    framed = composite_on_grey(frame_foreground(rgba, ratio), grey)
    pixels = torch.from_numpy(framed.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    pixels = F.interpolate(pixels, (size, size), mode="bilinear", align_corners=False, antialias=True)
    return pixels, source, Image.fromarray(framed)


# ----------------------------------------------------------------------------- meshing
def marching_cubes_field(values: np.ndarray, level: float, lo: float, hi: float):
    """Marching cubes (scikit-image) on a cubic grid spanning [lo, hi]^3; returns a trimesh."""
    import trimesh
    from skimage import measure

    if not values.max() > level:
        raise InvalidInput(
            f"the model's field has nothing inside its surface level {level:g} (range {values.min():.3g}..{values.max():.3g}); "
            "the result would be empty; try another image or seed"
        )
    # Pad with 'outside' so every surface is closed at the box border.
    outside = min(float(values.min()), level) - 1.0
    padded = np.pad(values, 1, constant_values=outside)
    n = values.shape[0]
    step = (hi - lo) / (n - 1)
    verts, faces, _, _ = measure.marching_cubes(padded, level=level)
    verts = (verts - 1) * step + lo
    mesh = trimesh.Trimesh(verts, faces, process=False)
    if mesh.volume < 0:  # keep normals pointing out whatever the field's convention
        mesh.invert()
    return mesh


class LRMBackend:
    """Image -> mesh through ``LargeReconstructionModel``."""

    name = "lrm"

    def __init__(self, model: LargeReconstructionModel, *, model_name: str, revision: str = "local", device: str = "cpu"):
        self.model = model.to(device)
        self.model_name = model_name
        self.revision = revision
        self.device = device

    @classmethod
    def load(cls, path: str | Path, *, model_name: str, revision: str = "local", device: str = "cpu"):
        return cls(LargeReconstructionModel.load(path), model_name=model_name, revision=revision, device=device)

    def reconstruct(self, image, options: MeshOptions, on_progress: Callable[[str, float], None] | None = None,
                    *, timer=None) -> MeshResult:
        from .post import StageTimer, finish

        # 1. Check inputs, prepare the condition image as TripoSR does
        options = check_options(options)
        timer = timer or StageTimer()
        cfg = self.model.config
        with timer.stage("background"):
            pixels, mask_source, _ = condition_image(image, size=cfg.cond_image_size,
                                            ratio=cfg.foreground_ratio, grey=cfg.background)
        pixels = pixels.to(self.device)
        if on_progress:
            on_progress("reconstructing the triplane", 0.1)
        with timer.stage("reconstruction"), torch.inference_mode():
            # 2. Scene code
            triplane = self.model(pixels.to(next(self.model.parameters()).dtype))[0]
            # 3. Density on the asked grid, marching cubes, colour field for the bake
            n = int(options.grid)
            axis = torch.linspace(-cfg.radius, cfg.radius, n, device=self.device)
            grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
            density, _ = self.model.query(triplane, grid.to(triplane.dtype))
            field = density.reshape(n, n, n).float().cpu().numpy()
            raw = marching_cubes_field(field, cfg.threshold, -cfg.radius, cfg.radius)

        def colour(points: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                _, rgb_out = self.model.query(triplane, torch.as_tensor(points, dtype=triplane.dtype, device=self.device))
            return rgb_out.float().cpu().numpy()

        if on_progress:
            on_progress("cleaning, unwrapping and baking the texture", 0.5)
        mesh, report = finish(raw, colour, options, up=cfg.up, front=cfg.front, timer=timer)
        return MeshResult(
            mesh=mesh, backend=self.name, model=self.model_name, revision=self.revision,
            params={"grid": n, "threshold": cfg.threshold, "mask": mask_source,
                    "foreground_ratio": cfg.foreground_ratio, "timings": timer.timings, **report},
        )
