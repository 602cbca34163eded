"""Twins of openai/shap-e (text -> 3D) and openai/shap-e-img2img in diffusers' published layout.

The components are the tiny ones of ``pipelines.testing`` (the classes of the published folders:
``PriorTransformer``, ``ShapERenderer``, ``HeunDiscreteScheduler``, a CLIP text encoder with
projection or a CLIP vision encoder with its image processor); the tokenizer folder keeps the
published CLIP file names.
"""
from __future__ import annotations

from pathlib import Path

from ._common import fresh, write_clip_tokenizer

SHAP_E_REPO = "openai/shap-e"
SHAP_E_IMG2IMG_REPO = "openai/shap-e-img2img"


def build_shap_e(directory: Path, seed: int = 0) -> None:
    """``ShapEPipeline``: prior, text_encoder, tokenizer, shap_e_renderer, scheduler."""
    from diffusers import ShapEPipeline

    from ..devices import quiet_libraries
    from ..testing import tiny_shap_e_components

    quiet_libraries()
    directory = fresh(directory)
    ShapEPipeline(**tiny_shap_e_components(seed)).save_pretrained(directory, safe_serialization=True)
    write_clip_tokenizer(directory / "tokenizer")


def build_shap_e_img2img(directory: Path, seed: int = 0) -> None:
    """``ShapEImg2ImgPipeline``: prior, image_encoder, image_processor, shap_e_renderer, scheduler."""
    from diffusers import ShapEImg2ImgPipeline

    from ..devices import quiet_libraries
    from ..testing import tiny_shap_e_img2img_components

    quiet_libraries()
    directory = fresh(directory)
    ShapEImg2ImgPipeline(**tiny_shap_e_img2img_components(seed)).save_pretrained(directory, safe_serialization=True)
