"""Twins of Stable Diffusion XL base 1.0 and its scribble ControlNet, in the published diffusers layout.

Same classes and config keys as ``stabilityai/stable-diffusion-xl-base-1.0`` (two CLIP text encoders,
the second with a projection; a UNet with the "text_time" added conditioning; a four-block VAE, so
latents are 1/8 of the image like the real one) and ``xinsir/controlnet-scribble-sdxl-1.0``, only
narrower and shallower: 64x64 images in a couple of steps on CPU.
"""
from __future__ import annotations

import json
from pathlib import Path

from ._common import CLIP_BOS, CLIP_EOS, CLIP_VOCAB, fill_zero_convolutions, fresh, write_clip_tokenizer

SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
SCRIBBLE_REPO = "xinsir/controlnet-scribble-sdxl-1.0"

#: Width of each text encoder's hidden states; the UNet cross-attends to both, concatenated.
TEXT_DIM = 32
#: SDXL adds six size/crop numbers, each embedded to this width, to the pooled text embedding.
TIME_EMBED_DIM = 8

#: The published scheduler_config.json of SDXL base (keys other schedulers use are kept, as published).
SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}


def _unet_kwargs() -> dict:
    return dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        attention_head_dim=(2, 4, 4),
        transformer_layers_per_block=(1, 1, 2),
        use_linear_projection=True,
        cross_attention_dim=2 * TEXT_DIM,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=TEXT_DIM + 6 * TIME_EMBED_DIM,
        norm_num_groups=8,
    )


def sdxl_unet(seed: int = 0):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), **_unet_kwargs()
    )


def sdxl_vae(seed: int = 0, *, latent_channels: int = 4, scaling_factor: float = 0.13025, **extra):
    """Four blocks like the published VAEs (8x down-sampling), a few channels each."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, act_fn="silu",
        sample_size=64, scaling_factor=scaling_factor, force_upcast=True, **extra,
    )


def clip_text_encoder(seed: int, *, projection: bool, hidden_act: str = "quick_gelu"):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB, bos_token_id=CLIP_BOS, eos_token_id=CLIP_EOS, pad_token_id=1,
        hidden_size=TEXT_DIM, intermediate_size=37, projection_dim=TEXT_DIM, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act=hidden_act, layer_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def build_sdxl(directory: Path, seed: int = 0) -> None:
    """``StableDiffusionXLPipeline`` folder: model_index.json, unet, vae, two text encoders and
    tokenizers, scheduler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    from ..devices import quiet_libraries

    quiet_libraries()
    directory = fresh(directory)
    tokenizer_dir = directory / "tokenizer"
    write_clip_tokenizer(tokenizer_dir)
    pipe = StableDiffusionXLPipeline(
        vae=sdxl_vae(seed),
        text_encoder=clip_text_encoder(seed + 1, projection=False),
        text_encoder_2=clip_text_encoder(seed + 2, projection=True, hidden_act="gelu"),
        tokenizer=CLIPTokenizer.from_pretrained(str(tokenizer_dir)),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(tokenizer_dir)),
        unet=sdxl_unet(seed),
        scheduler=EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    # transformers may save a tokenizer as tokenizer.json only; keep the published files instead.
    write_clip_tokenizer(directory / "tokenizer")
    write_clip_tokenizer(directory / "tokenizer_2", pad_token="!")
    (directory / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))


def build_scribble_controlnet(directory: Path, seed: int = 0) -> None:
    """``ControlNetModel`` matching the SDXL twin's UNet (config.json + diffusion_pytorch_model.safetensors)."""
    from diffusers import ControlNetModel

    directory = fresh(directory)
    net = ControlNetModel.from_unet(sdxl_unet(seed), conditioning_embedding_out_channels=(8, 8, 16, 16))
    fill_zero_convolutions(net, seed + 1)
    net.save_pretrained(directory, safe_serialization=True)
