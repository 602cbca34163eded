"""Twin of stabilityai/TripoSR as published: ``config.yaml`` + ``model.ckpt`` (a plain state dict).

The config has TripoSR's keys and module classes with small sizes (a 2-layer ViT named
``design-studio/tiny-dino-vit``, 8x8x32 triplanes, 2 backbone layers); the checkpoint holds the
weights under TripoSR's original key names (transformers-4 ViT names), saved with ``torch.save``
as TripoSR's is. Random weights give a near-constant density with no surface, so a smooth ball is
planted in one channel (as in ``pipelines.testing.tiny_lrm``) and the last layer's bias places its
surface at TripoSR's default extraction threshold: the image still perturbs shape and colour.
"""
from __future__ import annotations

import math
from pathlib import Path

from ._common import fresh

TRIPOSR_REPO = "stabilityai/TripoSR"
TWIN_IMAGE_TOKENIZER = "design-studio/tiny-dino-vit"
#: Where the planted ball's surface sits, as a share of the box radius.
BALL_RADIUS = 0.6


def twin_config():
    from ..mesh.lrm import IMAGE_TOKENIZERS, LRMConfig

    return LRMConfig(
        cond_image_size=64, vit=dict(IMAGE_TOKENIZERS[TWIN_IMAGE_TOKENIZER]), plane_size=8, plane_channels=32,
        num_layers=2, num_heads=2, head_dim=16, upsample_channels=8, mlp_neurons=16, mlp_layers=3,
        mlp_activation="silu",
    )


def plant_round_prior(model, level: float) -> None:
    """Make the density field cross ``level`` on a ball of ``BALL_RADIUS`` x the box radius."""
    import torch

    cfg = model.config
    with torch.no_grad():
        p = cfg.plane_size
        axis = (torch.arange(p) + 0.5) / p * 2 - 1
        u, v = torch.meshgrid(axis, axis, indexing="ij")
        model.tokenizer.embeddings[:, 0] = 1.0 - u**2 - v**2  # summed over the 3 planes: 3 - 2 r^2
        model.backbone.proj_out.weight.mul_(0.05)
        model.backbone.proj_out.bias.zero_()
        up = model.post_processor.upsample
        up.weight[0].zero_()
        up.weight[:, 0].zero_()
        up.weight[0, 0] = 1.0
        up.bias[0] = 0.0
        c = cfg.upsample_channels
        linears = [m for m in model.decoder.layers if isinstance(m, torch.nn.Linear)]
        first = linears[0]
        first.weight[0].zero_()
        first.weight[0, [0, c, 2 * c]] = 1.0
        first.bias[0] = 0.0
        for layer in linears[1:-1]:
            layer.weight[0].zero_()
            layer.weight[0, 0] = 1.0
            layer.bias[0] = 0.0
            layer.weight[1:, 0] = 0.0
        s = torch.tensor(3.0 - 2 * BALL_RADIUS**2)
        for _ in linears[:-1]:
            s = torch.nn.functional.silu(s)
        last = linears[-1]
        last.weight[0].zero_()
        last.weight[0, 0] = 4.0
        # exp(4 s + b + density_bias) = level at the ball's surface
        last.bias[0] = math.log(level) - cfg.density_bias - 4.0 * float(s)


def build_triposr(directory: Path, seed: int = 0) -> None:
    """config.yaml + model.ckpt in TripoSR's published form."""
    import torch
    import yaml

    from ..mesh.lrm import LargeReconstructionModel, triposr_config_dict

    directory = fresh(directory)
    config = twin_config()
    torch.manual_seed(seed)
    model = LargeReconstructionModel(config).eval()
    plant_round_prior(model, config.threshold)
    (directory / "config.yaml").write_text(yaml.safe_dump(triposr_config_dict(config, TWIN_IMAGE_TOKENIZER),
                                                          sort_keys=False))
    torch.save({k: v.contiguous() for k, v in model.triposr_state_dict().items()}, directory / "model.ckpt")
