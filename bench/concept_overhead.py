"""Studio overhead: ``Studio.generate_concepts`` vs a bare diffusers pipeline call, same run, same seeds.

For the tiny twin and for a mid-size model with Stable Diffusion 1.5's architecture (its block
layout, attention and cross-attention width, at reduced channel counts) with random weights, both
loaded with ``from_pretrained`` from the same folder. Calls are interleaved and the median is
compared; warm vs cold compares the second request with the first one (studio start + model load).
The last line is ``overhead_ratio=X.XX`` (mid-size model, warm, studio / bare). No GPU here: CPU only.

    python bench/concept_overhead.py [--repeats 5] [--mid-size 256] [--mid-steps 4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def mid_size_pipeline(seed: int = 0):
    """SD-1.5-shaped components (4 down/up blocks, 3 with cross-attention, 768-wide text) at reduced width."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pipelines.testing import tiny_tokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(  # SD 1.5: (320, 640, 1280, 1280), 2 layers, head dim 8, cross-attn 768
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8,
    )
    vae = AutoencoderKL(  # SD 1.5's VAE layout (8x downsampling), half width
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=256,
        block_out_channels=(64, 128, 256, 256),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=512, eos_token_id=513, pad_token_id=513, vocab_size=514, max_position_embeddings=77,
        hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=4,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tiny_tokenizer(),
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def install_as_tiny(models_dir: Path, pipe) -> None:
    """Put ``pipe`` where the tiny profile's concept model lives, marked ready, so the studio loads it
    through its normal path (catalogue -> ``from_pretrained``)."""
    from pipelines import testing

    target = models_dir / "tiny" / "tiny-concept"
    pipe.save_pretrained(target, safe_serialization=True)
    (target / ".tiny-ready").write_text(json.dumps({"version": testing.TINY_VERSION, "seed": 0}))


def measure(label: str, models_dir: Path, data_dir: Path, *, n: int, steps: int, size: int, repeats: int) -> dict:
    from diffusers import StableDiffusionPipeline

    from design_studio.services import Studio
    from design_studio.settings import Settings
    from pipelines.devices import make_generator, quiet_libraries

    quiet_libraries()
    prompt, seed, guidance = "a structured top-handle handbag in cognac leather", 1234, 5.0
    settings = Settings(data_dir=data_dir, models_dir=models_dir, profile="tiny", device="cpu")

    def studio_call(studio):
        return studio.generate_concepts(prompt, n=n, seed=seed, steps=steps, guidance=guidance, width=size, height=size)

    # cold: a fresh studio's first request (database, model load, first run)
    t = time.perf_counter()
    studio = Studio(settings)
    studio_call(studio)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    studio_call(studio)
    warm_first = time.perf_counter() - t

    bare = StableDiffusionPipeline.from_pretrained(
        str(models_dir / "tiny" / "tiny-concept"), local_files_only=True, use_safetensors=True).to("cpu")
    bare.set_progress_bar_config(disable=True)

    def bare_call():
        return bare(prompt=prompt, num_images_per_prompt=n, generator=[make_generator("cpu", seed + i) for i in range(n)],
                    num_inference_steps=steps, guidance_scale=guidance, width=size, height=size, output_type="pil").images

    bare_call()  # warm the bare pipeline too
    studio_times, bare_times = [], []
    for _ in range(repeats):  # interleaved so drifting machine load hits both alike
        t = time.perf_counter()
        bare_call()
        bare_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        studio_call(studio)
        studio_times.append(time.perf_counter() - t)
    s_med, b_med = statistics.median(studio_times), statistics.median(bare_times)
    print(f"[{label}] {n} image(s) {size}x{size}, {steps} steps, {repeats} interleaved repeats")
    print(f"[{label}]   bare diffusers median {b_med:.3f} s   studio median {s_med:.3f} s   ratio {s_med / b_med:.3f}")
    print(f"[{label}]   fastest of each: bare {min(bare_times):.3f} s   studio {min(studio_times):.3f} s   "
          f"ratio {min(studio_times) / min(bare_times):.3f}   (machine load {os.getloadavg()[0]:.1f})")
    print(f"[{label}]   cold first request {cold:.2f} s   warm second request {warm_first:.3f} s   "
          f"cold/warm {cold / warm_first:.1f}x")
    return {"ratio": s_med / b_med, "cold_over_warm": cold / warm_first}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mid-size", type=int, default=192)
    ap.add_argument("--mid-steps", type=int, default=4)
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, device cpu ({torch.get_num_threads()} threads); no GPU in this run")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from pipelines.testing import materialize_tiny_models

        materialize_tiny_models(tmp / "tiny-models" / "tiny")
        measure("tiny", tmp / "tiny-models", tmp / "data-tiny", n=4, steps=2, size=64, repeats=args.repeats)

        pipe = mid_size_pipeline()
        params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
        install_as_tiny(tmp / "mid-models", pipe)
        del pipe
        print(f"[mid] SD-1.5-shaped UNet at reduced width: {params:.0f} M parameters")
        mid = measure("mid", tmp / "mid-models", tmp / "data-mid", n=1, steps=args.mid_steps, size=args.mid_size,
                      repeats=args.repeats)
    print(f"overhead_ratio={mid['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
