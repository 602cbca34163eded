"""A feed-forward large reconstruction model (TripoSR class): one image -> triplane NeRF -> mesh.

The network, written here in torch: a DINO ViT image tokenizer (transformers ``ViTModel``), learnt
triplane tokens refined by a transformer that cross-attends to the image tokens (diffusers
``BasicTransformerBlock``), a transposed-convolution triplane upsampler, and a NeRF MLP decoding
density and colour from the three planes' features. Marching cubes runs on the density grid and the
colour field is baked into a texture. Module names follow the published TripoSR checkpoint so its
``model.ckpt`` loads through ``map_triposr_state_dict`` (only the transformers-5 ViT renames differ).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidInput
from .base import MeshOptions, MeshResult, check_options

#: ViT settings of facebook/dino-vitb16 (the published model's image tokenizer).
DINO_VITB16 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                   image_size=224, patch_size=16, layer_norm_eps=1e-12, qkv_bias=True)


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
    upsample_channels: int = 40
    mlp_neurons: int = 64
    mlp_layers: int = 9
    radius: float = 0.87
    density_bias: float = -1.0
    threshold: float = 25.0
    background: float = 0.5  # the grey the model was trained to see behind the object
    # Frame of the reconstructed object (as TripoSR's own viewer rotates it): z up, front towards -x.
    up: str = "z"
    front: str = "-x"


class ImageTokenizer(nn.Module):
    """DINO ViT features of the (normalised) condition image, as (B, C, N) tokens."""

    def __init__(self, vit: dict):
        super().__init__()
        from transformers import ViTConfig, ViTModel

        self.model = ViTModel(ViTConfig(**vit))
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

    def __init__(self, channels: int, num_layers: int, num_heads: int, head_dim: int, cross_dim: int):
        super().__init__()
        from diffusers.models.attention import BasicTransformerBlock

        inner = num_heads * head_dim
        self.norm = nn.GroupNorm(32 if channels % 32 == 0 else 1, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, num_heads, head_dim, cross_attention_dim=cross_dim, activation_fn="geglu")
            for _ in range(num_layers)
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
    """MLP from the concatenated features of the three planes to density (1) and colour features (3)."""

    def __init__(self, in_channels: int, neurons: int, hidden_layers: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_channels, neurons), nn.SiLU()]
        for _ in range(hidden_layers - 1):
            layers += [nn.Linear(neurons, neurons), nn.SiLU()]
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
        self.backbone = TriplaneTransformer(config.plane_channels, config.num_layers, config.num_heads,
                                            config.head_dim, config.vit["hidden_size"])
        self.post_processor = TriplaneUpsampler(config.plane_channels, config.upsample_channels)
        self.decoder = NeRFDecoder(3 * config.upsample_channels, config.mlp_neurons, config.mlp_layers)

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
            feats = F.grid_sample(triplane, coords, align_corners=False, mode="bilinear")  # (3, C, 1, N)
            feats = feats[:, :, 0].permute(2, 0, 1).reshape(p.shape[0], -1)
            out = self.decoder(feats)
            densities.append(torch.exp(out[:, 0] + self.config.density_bias))
            colours.append(torch.sigmoid(out[:, 1:4]))
        return torch.cat(densities), torch.cat(colours)

    # ------------------------------------------------------------------ weights
    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"_class": "LargeReconstructionModel", **asdict(self.config)}, indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / "model.safetensors"))

    @classmethod
    def load(cls, directory: str | Path) -> "LargeReconstructionModel":
        """From ``config.json`` + ``model.safetensors`` (ours) or ``model.ckpt`` (TripoSR's layout)."""
        directory = Path(directory)
        # TripoSR ships config.yaml for its own loader; its architecture is our LRMConfig defaults.
        raw = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
        raw.pop("_class", None)
        known = set(LRMConfig.__dataclass_fields__)
        model = cls(LRMConfig(**{k: v for k, v in raw.items() if k in known}))
        if (directory / "model.safetensors").exists():
            from safetensors.torch import load_file

            state = load_file(str(directory / "model.safetensors"))
        elif (directory / "model.ckpt").exists():
            state = torch.load(directory / "model.ckpt", map_location="cpu", weights_only=True)
        else:
            raise FileNotFoundError(f"{directory} holds neither model.safetensors nor model.ckpt")
        missing, unexpected = model.load_state_dict(map_triposr_state_dict(state), strict=False)
        if missing:
            raise ValueError(f"checkpoint in {directory} lacks {len(missing)} weights, e.g. {missing[:3]}")
        return model.eval()


#: transformers 4 ViT names (in TripoSR's checkpoint) -> transformers 5 names.
_VIT_RENAMES = [
    (r"\.encoder\.layer\.(\d+)\.", r".layers.\1."),
    (r"\.attention\.attention\.query\.", ".attention.q_proj."),
    (r"\.attention\.attention\.key\.", ".attention.k_proj."),
    (r"\.attention\.attention\.value\.", ".attention.v_proj."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"(\.layers\.\d+)\.output\.dense\.", r"\1.mlp.fc2."),
]


def map_triposr_state_dict(state: dict) -> dict:
    """Rename a TripoSR ``model.ckpt`` state dict to this module's names (ours pass through)."""
    out = {}
    for key, value in state.items():
        if key.startswith("image_tokenizer."):
            for pattern, repl in _VIT_RENAMES:
                key = re.sub(pattern, repl, key)
        if key.endswith(("image_mean", "image_std")) or key.startswith("renderer."):
            continue  # constants we rebuild, and the renderer has no weights
        out[key] = value
    return out


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
        from ..background import on_background, prepare_image
        from .post import StageTimer, finish

        # 1. Check inputs, prepare the condition image (object centred on the model's grey)
        options = check_options(options)
        timer = timer or StageTimer()
        cfg = self.model.config
        with timer.stage("background"):
            prepared = prepare_image(image, size=cfg.cond_image_size, margin=0.15)
        grey = int(round(cfg.background * 255))
        rgb = np.asarray(on_background(prepared.image, (grey, grey, grey)), dtype=np.float32) / 255.0
        pixels = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(self.device)
        if on_progress:
            on_progress("reconstructing the triplane", 0.1)
        with timer.stage("reconstruction"), torch.inference_mode():
            # 2. Scene code
            triplane = self.model(pixels)[0]
            # 3. Density on a grid, marching cubes, colour field for the bake
            n = int(options.grid)
            axis = torch.linspace(-cfg.radius, cfg.radius, n, device=self.device)
            grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
            density, _ = self.model.query(triplane, grid)
            field = density.reshape(n, n, n).float().cpu().numpy()
            raw = marching_cubes_field(field, cfg.threshold, -cfg.radius, cfg.radius)

        def colour(points: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                _, rgb_out = self.model.query(triplane, torch.as_tensor(points, dtype=torch.float32, device=self.device))
            return rgb_out.float().cpu().numpy()

        if on_progress:
            on_progress("cleaning, unwrapping and baking the texture", 0.5)
        mesh, report = finish(raw, colour, options, up=cfg.up, front=cfg.front, timer=timer)
        return MeshResult(
            mesh=mesh, backend=self.name, model=self.model_name, revision=self.revision,
            params={"grid": n, "threshold": cfg.threshold, "mask": prepared.mask_source,
                    "timings": timer.timings, **report},
        )
