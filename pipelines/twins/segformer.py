"""Twin of mattmdjaga/segformer_b2_clothes: a four-stage SegFormer with the card's 18 labels."""
from __future__ import annotations

import json
from pathlib import Path

from ._common import fresh

SEGFORMER_CLOTHES_REPO = "mattmdjaga/segformer_b2_clothes"

LABELS = ["Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt",
          "Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag", "Scarf"]

PREPROCESSOR_CONFIG = {
    "do_normalize": True,
    "do_reduce_labels": False,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "SegformerImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "resample": 2,
    "rescale_factor": 1 / 255,
    "size": {"height": 64, "width": 64},
}


def build_segformer_clothes(directory: Path, seed: int = 0) -> None:
    """config.json + model.safetensors + preprocessor_config.json (label 0 is the background)."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    directory = fresh(directory)
    config = SegformerConfig(
        num_channels=3, num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 8, 16, 16], patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2],
        num_attention_heads=[1, 1, 2, 2], mlp_ratios=[4, 4, 4, 4], decoder_hidden_size=16,
        id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)},
    )
    torch.manual_seed(seed)
    SegformerForSemanticSegmentation(config).eval().save_pretrained(directory, safe_serialization=True)
    (directory / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
