"""Tiny random-weight SDXL, SDXL-ControlNet and FLUX models, saved in the published folder layout.

Built the way diffusers' own pipeline tests build theirs (``get_dummy_components``): the real
classes (``UNet2DConditionModel`` with ``text_time`` added conditioning and two CLIP encoders,
the last with projection; an SDXL ``ControlNetModel``; ``FluxTransformer2DModel`` with a CLIP and
a T5 encoder), only small. ``save_pretrained`` writes ``model_index.json`` and one sub-folder per
component exactly as the published repositories do, so ``ConceptModel.load`` and the LoRA trainer
load them with ``from_pretrained`` like the real checkpoints. The T5 tokenizer is a tiny unigram
vocabulary made here: nothing is downloaded.
"""
from __future__ import annotations

import json
import string
from pathlib import Path

from .testing import tiny_tokenizer

#: Version of these twins; bump it when a config changes so cached copies are rebuilt.
TINY_XL_VERSION = "1"


def _clip_config(**overrides):
    from transformers import CLIPTextConfig

    values = dict(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=32, intermediate_size=37,
                  layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, vocab_size=514,
                  max_position_embeddings=77, hidden_act="gelu", projection_dim=32)
    values.update(overrides)
    return CLIPTextConfig(**values)


def _sdxl_unet_kwargs() -> dict:
    # cross-attention width = both encoders' hidden sizes (32 + 32); the added-conditioning input =
    # 6 time ids x addition_time_embed_dim + the pooled projection of text_encoder_2
    return dict(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64, norm_num_groups=8,
    )


def tiny_sdxl_components(seed: int = 0) -> dict:
    """Components of a working ``StableDiffusionXLPipeline`` (64x64 in 2 steps, well under a second)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=32, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                **_sdxl_unet_kwargs())
    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=[16, 32], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=8, sample_size=64, scaling_factor=0.13025,
                        force_upcast=False)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_clip_config())
    torch.manual_seed(seed + 1)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config())
    # SDXL base's published scheduler: Euler, scaled-linear betas, "leading" spacing, epsilon
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading", prediction_type="epsilon")
    return {
        "unet": unet, "vae": vae, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2,
        "tokenizer": tiny_tokenizer(), "tokenizer_2": tiny_tokenizer(), "scheduler": scheduler,
        "image_encoder": None, "feature_extractor": None,
    }


def tiny_sdxl_controlnet(seed: int = 0):
    """An SDXL scribble-style ``ControlNetModel`` for the tiny SDXL UNet.

    Its zero-initialised output convolutions get small random weights so the sketch visibly acts.
    """
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel(conditioning_embedding_out_channels=(16, 32), **_sdxl_unet_kwargs())
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for block in list(net.controlnet_down_blocks) + [net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]:
            block.weight.copy_(torch.randn(block.weight.shape, generator=generator) * 0.5)
    return net


def tiny_t5_tokenizer():
    """A T5 (unigram) tokenizer over single characters and a few words, made without any download."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    words = ["design", "heritage", "a", "the", "of", "shoe", "bag", "chair", "lamp", "red", "blue"]
    pieces += [("\u2581" + w, -1.0) for w in words]
    pieces += [(c, -3.0) for c in string.ascii_lowercase + string.digits + string.punctuation]
    pieces += [("\u2581" + c, -2.5) for c in string.ascii_lowercase]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def tiny_flux_components(seed: int = 0) -> dict:
    """Components of a working ``FluxPipeline`` in FLUX.1-schnell's shape (no guidance embedding).

    The VAE downsamples by 2 with 4 latent channels, so the 2x2-packed transformer sees 16 channels;
    FLUX.1-schnell's is 8x / 16 channels / 64 packed, the same code path.
    """
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    t5_tokenizer = tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=False)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_clip_config())
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                             num_heads=4, relative_attention_num_buckets=8, is_encoder_decoder=False,
                                             feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
                                             decoder_start_token_id=0))
    torch.manual_seed(seed)
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(16, 32),
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        layers_per_block=1, latent_channels=4, norm_num_groups=8, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    # FLUX.1-schnell's published scheduler config: shift 1, no resolution-dependent shift
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    return {
        "transformer": transformer, "vae": vae, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2,
        "tokenizer": tiny_tokenizer(), "tokenizer_2": t5_tokenizer, "scheduler": scheduler,
        "image_encoder": None, "feature_extractor": None,
    }


def materialize_tiny_xl_models(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write the tiny SDXL, SDXL ControlNet and FLUX folders under ``root`` (once); ``{name: dir}``."""
    root = Path(root)
    out = {"sdxl": root / "tiny-sdxl", "sdxl-controlnet": root / "tiny-sdxl-controlnet", "flux": root / "tiny-flux"}
    stamp = json.dumps({"version": TINY_XL_VERSION, "seed": seed})

    def ready(path: Path) -> bool:
        marker = path / ".tiny-ready"
        return marker.exists() and marker.read_text() == stamp

    from .devices import quiet_libraries

    quiet_libraries()
    if not ready(out["sdxl"]):
        from diffusers import StableDiffusionXLPipeline

        StableDiffusionXLPipeline(**tiny_sdxl_components(seed)).save_pretrained(out["sdxl"], safe_serialization=True)
        (out["sdxl"] / ".tiny-ready").write_text(stamp)
    if not ready(out["sdxl-controlnet"]):
        tiny_sdxl_controlnet(seed).save_pretrained(out["sdxl-controlnet"], safe_serialization=True)
        (out["sdxl-controlnet"] / ".tiny-ready").write_text(stamp)
    if not ready(out["flux"]):
        from diffusers import FluxPipeline

        FluxPipeline(**tiny_flux_components(seed)).save_pretrained(out["flux"], safe_serialization=True)
        (out["flux"] / ".tiny-ready").write_text(stamp)
    return out


__all__ = ["tiny_sdxl_components", "tiny_sdxl_controlnet", "tiny_flux_components", "tiny_t5_tokenizer",
           "materialize_tiny_xl_models"]
