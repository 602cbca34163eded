"""Twin of Depth-Anything-V2-Small-hf: ``DepthAnythingForDepthEstimation`` on a DINOv2 backbone.

Same classes, config keys and preprocessor settings as ``depth-anything/Depth-Anything-V2-Small-hf``
(four backbone stages read out at the same relative depths, reassemble factors 4/2/1/0.5, the DPT
processor keeping the aspect ratio at multiples of 14), with a 56-pixel input and narrow layers.
"""
from __future__ import annotations

import json
from pathlib import Path

from ._common import fresh

DEPTH_REPO = "depth-anything/Depth-Anything-V2-Small-hf"

PREPROCESSOR_CONFIG = {
    "do_normalize": True,
    "do_pad": False,
    "do_rescale": True,
    "do_resize": True,
    "ensure_multiple_of": 14,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "DPTImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "keep_aspect_ratio": True,
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"height": 56, "width": 56},
    "size_divisor": None,
}


def build_depth_anything_small(directory: Path, seed: int = 0) -> None:
    """config.json + model.safetensors + preprocessor_config.json."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    directory = fresh(directory)
    backbone = Dinov2Config(
        image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
        mlp_ratio=4, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=32, reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16, head_hidden_size=8, head_in_index=-1,
        depth_estimation_type="relative", max_depth=1,
    )
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(directory, safe_serialization=True)
    (directory / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
