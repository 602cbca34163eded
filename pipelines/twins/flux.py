"""Twin of FLUX.1-schnell in the published diffusers layout (``FluxPipeline``).

Same classes and config keys as ``black-forest-labs/FLUX.1-schnell``: a ``FluxTransformer2DModel``
without guidance embedding (schnell is guidance-distilled), a 16-channel VAE with FLUX's scaling
and shift factors and no quant convolutions, a CLIP text encoder for the pooled embedding, a T5
encoder for the sequence, their tokenizers, and the flow-matching Euler scheduler with schnell's
settings. Only the widths and depths are small.
"""
from __future__ import annotations

import json
from pathlib import Path

from ._common import fresh, write_clip_tokenizer, write_t5_tokenizer
from .sdxl import clip_text_encoder, sdxl_vae

FLUX_SCHNELL_REPO = "black-forest-labs/FLUX.1-schnell"

#: The published scheduler_config.json of FLUX.1-schnell.
SCHEDULER_CONFIG = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": False,
}

T5_DIM = 32


def flux_transformer(seed: int = 0):
    import torch
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=T5_DIM, pooled_projection_dim=32, guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    )


def t5_encoder(seed: int, vocab_size: int):
    import torch
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size, d_model=T5_DIM, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=0.0,
        feed_forward_proj="gated-gelu", is_encoder_decoder=True, tie_word_embeddings=False,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    torch.manual_seed(seed)
    return T5EncoderModel(config).eval()


def build_flux_schnell(directory: Path, seed: int = 0) -> None:
    """``FluxPipeline`` folder: model_index.json, transformer, vae, text_encoder(_2), tokenizer(_2), scheduler."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTokenizer, T5TokenizerFast

    from ..devices import quiet_libraries

    quiet_libraries()
    directory = fresh(directory)
    write_clip_tokenizer(directory / "tokenizer")
    vocab = write_t5_tokenizer(directory / "tokenizer_2")
    pipe = FluxPipeline(
        transformer=flux_transformer(seed),
        vae=sdxl_vae(seed, latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159,
                     use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=clip_text_encoder(seed + 1, projection=False),
        text_encoder_2=t5_encoder(seed + 2, vocab),
        tokenizer=CLIPTokenizer.from_pretrained(str(directory / "tokenizer")),
        tokenizer_2=T5TokenizerFast.from_pretrained(str(directory / "tokenizer_2")),
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(SCHEDULER_CONFIG),
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    write_clip_tokenizer(directory / "tokenizer")
    write_t5_tokenizer(directory / "tokenizer_2")
    (directory / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))
    # Recorded under the class name the published folder uses (transformers 5 aliases it).
    index = json.loads((directory / "model_index.json").read_text())
    index["tokenizer_2"] = ["transformers", "T5TokenizerFast"]
    (directory / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
