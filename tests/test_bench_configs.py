"""The full-size configs written into bench/gpu.py build the published models: parameter counts of
SDXL base, FLUX.1-schnell and their encoders as published (built on the meta device: no memory)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).resolve().parents[1] / "bench" / "gpu.py")


@pytest.fixture(scope="module")
def gpu():
    module = importlib.util.module_from_spec(SPEC)
    sys.modules[SPEC.name] = module  # dataclasses look their module up while the class is made
    SPEC.loader.exec_module(module)
    return module


def millions(build) -> float:
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = build()
    return sum(p.numel() for p in model.parameters()) / 1e6


def test_published_parameter_counts(gpu):
    from diffusers import AutoencoderKL, FluxTransformer2DModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from pipelines.mesh.lrm import LRMConfig

    # stabilityai/stable-diffusion-xl-base-1.0 and black-forest-labs/FLUX.1-schnell model cards / checkpoints
    assert millions(lambda: UNet2DConditionModel.from_config(gpu.SDXL_UNET)) == pytest.approx(2567.46, abs=0.01)
    assert millions(lambda: AutoencoderKL.from_config(gpu.SDXL_VAE)) == pytest.approx(83.65, abs=0.01)
    assert millions(lambda: CLIPTextModel(CLIPTextConfig(**gpu.CLIP_L))) == pytest.approx(123.06, abs=0.01)
    assert millions(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**gpu.CLIP_BIGG))) == pytest.approx(694.66, abs=0.01)
    assert millions(lambda: FluxTransformer2DModel(**gpu.FLUX_TRANSFORMER)) == pytest.approx(11_900, rel=0.005)
    assert LRMConfig(**gpu.TRIPOSR) == LRMConfig()  # the network's defaults are TripoSR's published values
