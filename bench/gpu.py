"""GPU benchmark of the shipped models at full size, with random weights built from the published configs.

Speed and memory do not depend on weight values, so nothing is downloaded: SDXL base (UNet, VAE,
CLIP ViT-L and OpenCLIP bigG text encoders), FLUX.1-schnell (transformer, VAE, CLIP, T5-XXL) and
TripoSR (DINO ViT-B/16, 32x32x1024 triplane transformer, NeRF MLP) are built from their published
configuration values, parameters allocated directly on the GPU in the run's dtype. Sections:

- SDXL 1024x1024, 30 steps, fp16 and FLUX.1-schnell 1024x1024, 4 steps, bf16: s/image with SDPA and
  with ``torch.compile`` (regional: the repeated transformer blocks), the studio's ``ConceptModel.generate`` beside the bare diffusers call.
- Peak VRAM of SDXL and FLUX per memory mode (none / VAE slicing + tiling / model CPU offload).
- TripoSR s/mesh at full size (grid 256): the studio's ``LRMBackend.reconstruct`` (textured mesh)
  beside the bare network + density grid + marching cubes.
- Prompt -> 4 SDXL concepts -> TripoSR -> textured GLB, studio code beside the bare calls.

Each section has a time budget; when the whole run passes its budget the remaining sections are
skipped and say so. One markdown table is printed at the end. ``--smoke`` runs every section on
CPU with tiny configs (same code paths; ``torch.compile`` with the eager backend) to test the script itself.

    python bench/gpu.py            # on a CUDA machine, under 8 minutes on one H100-class GPU
    python bench/gpu.py --smoke    # anywhere, under a minute
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "a tan leather messenger bag with brass buckles, studio photo"

# --------------------------------------------------------------------------- published configs
#: stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    only_cross_attention=False, block_out_channels=(320, 640, 1280), layers_per_block=2, downsample_padding=1,
    mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=2048,
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), dual_cross_attention=False,
    use_linear_projection=True, class_embed_type=None, addition_embed_type="text_time",
    addition_time_embed_dim=256, num_class_embeds=None, upcast_attention=None,
    resnet_time_scale_shift="default", projection_class_embeddings_input_dim=2816,
)
#: vae/config.json of SDXL base (FLUX's differs in latent channels, scaling and quant convs)
SDXL_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025,
    force_upcast=True,
)
FLUX_VAE = dict(SDXL_VAE, latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                use_post_quant_conv=False, force_upcast=True)
#: CLIP ViT-L/14 text tower (SDXL text_encoder, FLUX text_encoder)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, projection_dim=768, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
              bos_token_id=0, eos_token_id=2, pad_token_id=1)
#: OpenCLIP ViT-bigG/14 text tower with projection (SDXL text_encoder_2)
CLIP_BIGG = dict(CLIP_L, hidden_size=1280, intermediate_size=5120, projection_dim=1280, num_hidden_layers=32,
                 num_attention_heads=20, hidden_act="gelu")
#: black-forest-labs/FLUX.1-schnell transformer/config.json
FLUX_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                        guidance_embeds=False, axes_dims_rope=(16, 56, 56))
#: google/t5-v1_1-xxl encoder (FLUX text_encoder_2)
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
              layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False,
              pad_token_id=0, eos_token_id=1)
#: stabilityai/TripoSR config.yaml
TRIPOSR = dict(cond_image_size=512, plane_size=32, plane_channels=1024, num_layers=16, num_heads=16, head_dim=64,
               upsample_channels=40, mlp_neurons=64, mlp_layers=9, radius=0.87, density_bias=-1.0, threshold=25.0)
TRIPOSR_GRID = 256


@dataclass
class Plan:
    """Sizes of one run: the real ones on CUDA, tiny ones for ``--smoke``."""

    smoke: bool
    device: str
    size: int = 1024
    sdxl_steps: int = 30
    flux_steps: int = 4
    grid: int = TRIPOSR_GRID
    budget_s: float = 440.0  # the whole run (8 minutes minus start-up and margin)
    section_s: dict = field(default_factory=lambda: {"sdxl": 50, "flux": 70, "memory": 120, "triposr": 50,
                                                      "e2e": 80, "compile sdxl": 70, "compile flux": 80})
    compile_backend: str = "inductor"  # "eager" in smoke runs: dynamo traces, nothing is code-generated


@dataclass
class Row:
    section: str
    what: str
    studio: str = ""
    bare: str = ""
    ratio: str = ""
    note: str = ""


class Bench:
    def __init__(self, plan: Plan):
        self.plan, self.rows, self.started = plan, [], time.perf_counter()

    def left(self) -> float:
        return self.plan.budget_s - (time.perf_counter() - self.started)

    def add(self, section, what, studio=None, bare=None, note="", unit="s"):
        fmt = (lambda v: f"{v:.2f} {unit}") if unit == "s" else (lambda v: f"{v:.1f} {unit}")
        ratio = f"{studio / bare:.2f}" if studio is not None and bare else ""
        self.rows.append(Row(section, what, fmt(studio) if studio is not None else "",
                             fmt(bare) if bare is not None else "", ratio, note))
        print(f"[{time.perf_counter() - self.started:6.1f}s] {section} | {what} | {self.rows[-1].studio} | "
              f"{self.rows[-1].bare} | {ratio} | {note}", flush=True)

    def section(self, name: str, rows: list[tuple[str, str]], run, *, whole: bool = False) -> None:
        """Run one section unless the run is over budget; a failure or skip still fills its rows.

        A section cannot be stopped half-way, so it starts only with at least half its budget left
        (``whole``: all of it, for sections whose length is hard to foresee, such as compiling).
        """
        budget = min(self.plan.section_s[name], self.left())
        need = self.plan.section_s[name] * (1.0 if whole else 0.5)
        if self.left() < need and not self.plan.smoke:
            for label, what in rows:
                self.add(label, what, note=f"skipped: run budget ({self.plan.budget_s:.0f} s) nearly spent")
            return
        before = len(self.rows)
        deadline = time.perf_counter() + budget
        try:
            run(deadline)
        except Exception as exc:  # report and go on: one broken section must not hide the others
            print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            done = {(r.section, r.what) for r in self.rows[before:]}
            for label, what in rows:
                if (label, what) not in done:
                    self.add(label, what, note=f"failed: {type(exc).__name__}: {str(exc)[:80]}")
        finally:
            free(self.plan.device)
        done = {(r.section, r.what) for r in self.rows[before:]}
        for label, what in rows:
            if (label, what) not in done:
                self.add(label, what, note="skipped: section time budget spent")

    def table(self) -> str:
        lines = ["| section | measurement | studio | bare diffusers / network | ratio | note |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r.section} | {r.what} | {r.studio} | {r.bare} | {r.ratio} | {r.note} |" for r in self.rows]
        return "\n".join(lines)


# --------------------------------------------------------------------------- building models
def free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def materialize(build, device: str, dtype):
    """Build a model with its parameters on the ``meta`` device, then give every parameter fresh
    random values directly on ``device`` in ``dtype`` (norm scales 1, biases 0). Buffers (position
    ids, rotary tables) are computed normally, so the model runs exactly as a loaded one would."""
    import torch
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device

    with init_empty_weights(include_buffers=False):
        model = build()
    for name, param in list(model.named_parameters()):
        if param.ndim == 1:
            value = torch.ones if name.endswith(("weight", "scale")) else torch.zeros
            tensor = value(param.shape, device=device, dtype=dtype)
        else:  # variance-preserving, so activations stay of order one through deep stacks
            fan_in = max(1, param[0].numel())
            tensor = torch.randn(param.shape, device=device, dtype=dtype) * fan_in**-0.5
        set_module_tensor_to_device(model, name, device, value=tensor)
    return model.to(device=device, dtype=dtype).eval()


def _config(component) -> dict:
    """A built component's config as constructor keywords (diffusers and transformers alike)."""
    cfg = component.config
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def sdxl_pipeline(plan: Plan, dtype):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from pipelines.testing import tiny_tokenizer

    unet, vae, clip_l, clip_g = SDXL_UNET, SDXL_VAE, CLIP_L, CLIP_BIGG
    if plan.smoke:  # the tiny twin's configs through the same build path
        from pipelines.testing_xl import tiny_sdxl_components

        tiny = tiny_sdxl_components()
        unet, vae, clip_l, clip_g = (_config(tiny[k]) for k in ("unet", "vae", "text_encoder", "text_encoder_2"))
    dev = plan.device
    pipe = StableDiffusionXLPipeline(
        unet=materialize(lambda: UNet2DConditionModel.from_config(unet), dev, dtype),
        vae=materialize(lambda: AutoencoderKL.from_config(vae), dev, dtype),
        text_encoder=materialize(lambda: CLIPTextModel(CLIPTextConfig(**clip_l)), dev, dtype),
        text_encoder_2=materialize(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**clip_g)), dev, dtype),
        tokenizer=tiny_tokenizer(), tokenizer_2=tiny_tokenizer(),  # token ids only; lengths are padded to 77
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def flux_pipeline(plan: Plan, dtype):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from pipelines.testing import tiny_tokenizer
    from pipelines.testing_xl import tiny_t5_tokenizer

    transformer, vae, clip_l, t5 = FLUX_TRANSFORMER, FLUX_VAE, CLIP_L, T5_XXL
    if plan.smoke:
        from pipelines.testing_xl import tiny_flux_components

        tiny = tiny_flux_components()
        transformer, vae, clip_l, t5 = (_config(tiny[k]) for k in ("transformer", "vae", "text_encoder", "text_encoder_2"))
    dev = plan.device
    pipe = FluxPipeline(
        transformer=materialize(lambda: FluxTransformer2DModel.from_config(transformer), dev, dtype),
        vae=materialize(lambda: AutoencoderKL.from_config(vae), dev, dtype),
        text_encoder=materialize(lambda: CLIPTextModel(CLIPTextConfig(**clip_l)), dev, dtype),
        text_encoder_2=materialize(lambda: T5EncoderModel(T5Config(**t5)), dev, dtype),
        tokenizer=tiny_tokenizer(), tokenizer_2=tiny_t5_tokenizer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def triposr_model(plan: Plan):
    import torch

    from pipelines.mesh.lrm import LargeReconstructionModel, LRMConfig

    config = LRMConfig(**TRIPOSR)
    if plan.smoke:
        from pipelines.testing import tiny_lrm

        config = tiny_lrm().config
    return materialize(lambda: LargeReconstructionModel(config), plan.device, torch.float32)


# --------------------------------------------------------------------------- sections
def timed(device, fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def concept_section(bench: Bench, name: str, pipe, steps: int, guidance: float, deadline: float, *,
                    compile: bool = False) -> None:
    """Studio ``ConceptModel.generate`` beside the bare pipeline call, with SDPA or ``torch.compile``."""
    import torch

    from pipelines.concept import ConceptModel, ConceptRequest
    from pipelines.devices import make_generator

    plan = bench.plan
    size = plan.size
    model = ConceptModel(pipe, name=name, revision="random-weights", device=plan.device)

    def studio():
        model.generate(ConceptRequest(prompt=PROMPT, n=1, seed=1, steps=steps, guidance=guidance,
                                      width=size, height=size))

    def bare():
        pipe(prompt=PROMPT, num_inference_steps=steps, guidance_scale=guidance, width=size, height=size,
             generator=make_generator(plan.device, 1), output_type="pil")

    note = f"s/image, {pipe.dtype}".replace("torch.", "")
    if compile:
        # regional compilation: each repeated transformer block is compiled once and reused, which
        # keeps the compile time to tens of seconds for about the speed of compiling the whole model
        denoiser = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
        denoiser.compile_repeated_blocks(backend=plan.compile_backend)
        note += f", repeated blocks compiled ({plan.compile_backend})"
    with torch.inference_mode():
        t0 = time.perf_counter()
        bare()  # warm-up: kernels, cuDNN autotuning, compilation
        first = time.perf_counter() - t0
        t_bare = timed(plan.device, bare)
        t_studio = timed(plan.device, studio) if time.perf_counter() < deadline else None
    if compile:
        note += f"; first call incl. compile {first:.0f} s"
    mode = "torch.compile" if compile else "SDPA"
    bench.add(name, f"{size}² {steps} steps, {mode}", t_studio, t_bare, note=note)


def memory_section(bench: Bench, name: str, build, steps: int, guidance: float, deadline: float) -> None:
    """Peak VRAM of one image per memory mode, each on a fresh pipeline (hooks do not come off)."""
    import torch

    from pipelines.devices import enable_offload, enable_vae_saving, make_generator

    plan = bench.plan
    for mode in ("none", "VAE slicing+tiling", "model CPU offload"):
        what = f"peak VRAM, {mode}"
        if time.perf_counter() > deadline:
            return
        if plan.device != "cuda":
            pipe = build()
            if mode == "VAE slicing+tiling":
                enable_vae_saving(pipe)
            elif mode == "model CPU offload":
                bench.add(name, what, note="needs CUDA (smoke run)")
                continue
            with torch.inference_mode():
                pipe(prompt=PROMPT, num_inference_steps=steps, guidance_scale=guidance, width=plan.size,
                     height=plan.size, generator=make_generator(plan.device, 1))
            bench.add(name, what, note="ran; no VRAM on CPU (smoke run)")
            continue
        pipe = build()
        pipe.set_progress_bar_config(disable=True)
        if mode == "VAE slicing+tiling":
            enable_vae_saving(pipe)
        elif mode == "model CPU offload":
            pipe.to("cpu")
            free("cuda")
            enable_offload(pipe, "model", "cuda")
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            t = timed("cuda", lambda: pipe(prompt=PROMPT, num_inference_steps=steps, guidance_scale=guidance,
                                           width=plan.size, height=plan.size, generator=make_generator("cuda", 1)))
        peak = torch.cuda.max_memory_allocated() / 2**30
        bench.rows.append(Row(name, what, f"{peak:.1f} GiB", "", "", f"{plan.size}², {steps} steps in {t:.1f} s"))
        print(f"{name} | {what} | {peak:.1f} GiB | {t:.1f} s", flush=True)
        pipe = None  # drop the weights before the next mode builds its own
        free("cuda")


def lrm_bare(model, image, grid: int, device: str):
    """The network alone: triplane, density on the grid, marching cubes (what TripoSR's own run does)."""
    import numpy as np
    import torch

    from pipelines.mesh.lrm import marching_cubes_field

    cfg = model.config
    size = cfg.cond_image_size
    rgb = np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
    with torch.inference_mode():
        triplane = model(torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device))[0]
        axis = torch.linspace(-cfg.radius, cfg.radius, grid, device=device)
        points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        density, _ = model.query(triplane, points)
        field = density.reshape(grid, grid, grid).float().cpu().numpy()
    return field, marching_cubes_field(field, cfg.threshold, -cfg.radius, cfg.radius)


def set_surface_threshold(model, image, grid: int, device: str) -> None:
    """Random weights have no object: cut the density field at a quantile so a surface exists."""
    import numpy as np
    import torch

    cfg = model.config
    rgb = np.asarray(image.convert("RGB").resize((cfg.cond_image_size,) * 2), dtype=np.float32) / 255.0
    with torch.inference_mode():
        triplane = model(torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device))[0]
        axis = torch.linspace(-cfg.radius * 0.5, cfg.radius * 0.5, 16, device=device)
        points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        density, _ = model.query(triplane, points)
    model.config.threshold = float(np.quantile(density.float().cpu().numpy(), 0.5))


def object_photo(size: int = 512):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    ImageDraw.Draw(image).ellipse((size // 5, size // 4, 4 * size // 5, 3 * size // 4), fill=(150, 90, 40))
    return image


def triposr_section(bench: Bench, deadline: float) -> None:
    from pipelines.mesh.base import MeshOptions
    from pipelines.mesh.lrm import LRMBackend

    plan = bench.plan
    model = triposr_model(plan)
    set_surface_threshold(model, object_photo(), plan.grid, plan.device)
    backend = LRMBackend(model, model_name="triposr-random", device=plan.device)
    image = object_photo()
    lrm_bare(model, image, plan.grid, plan.device)  # warm-up
    t_bare = timed(plan.device, lambda: lrm_bare(model, image, plan.grid, plan.device))
    options = MeshOptions(grid=plan.grid, texture_size=1024 if not plan.smoke else 128,
                          face_budget=20000 if not plan.smoke else 500)
    holder = {}
    t_studio = timed(plan.device, lambda: holder.update(r=backend.reconstruct(image, options)))
    faces = len(holder["r"].mesh.faces)
    bench.add("triposr", f"s/mesh, grid {plan.grid}", t_studio, t_bare,
              note=f"studio: textured, {faces} faces; bare: network + grid + marching cubes")


def e2e_section(bench: Bench, deadline: float) -> None:
    """Prompt -> 4 SDXL concepts -> TripoSR on the first -> textured GLB, beside the bare calls."""
    import torch

    from pipelines.concept import ConceptModel, ConceptRequest
    from pipelines.devices import make_generator
    from pipelines.mesh.base import MeshOptions
    from pipelines.mesh.export import export_glb, load_mesh_bytes
    from pipelines.mesh.lrm import LRMBackend

    plan = bench.plan
    dtype = torch.float16 if plan.device == "cuda" else torch.float32
    pipe = sdxl_pipeline(plan, dtype)
    pipe.set_progress_bar_config(disable=True)
    model = ConceptModel(pipe, name="sdxl-random", revision="random-weights", device=plan.device)
    lrm = triposr_model(plan)
    backend = LRMBackend(lrm, model_name="triposr-random", device=plan.device)
    set_surface_threshold(lrm, object_photo(), plan.grid, plan.device)
    options = MeshOptions(grid=plan.grid, texture_size=1024 if not plan.smoke else 128,
                          face_budget=20000 if not plan.smoke else 500)
    steps, size = plan.sdxl_steps, plan.size
    with torch.inference_mode():
        pipe(prompt=PROMPT, num_inference_steps=2, width=size, height=size)  # warm-up
    out = {}

    def studio():
        with torch.inference_mode():
            concepts = model.generate(ConceptRequest(prompt=PROMPT, n=4, seed=3, steps=steps, width=size, height=size))
        glb = export_glb(backend.reconstruct(concepts[0].image, options).mesh)
        out["glb"] = glb

    def bare():
        with torch.inference_mode():
            images = pipe(prompt=PROMPT, num_images_per_prompt=4, num_inference_steps=steps, width=size, height=size,
                          generator=[make_generator(plan.device, 3 + i) for i in range(4)]).images
        lrm_bare(lrm, images[0], plan.grid, plan.device)

    t_bare = timed(plan.device, bare)
    t_studio = timed(plan.device, studio) if time.perf_counter() < deadline else None
    note = "bare: 4 images + network/grid/marching cubes, no texture"
    if "glb" in out:
        mesh = load_mesh_bytes(out["glb"])
        textured = getattr(getattr(mesh.visual, "material", None), "baseColorTexture", None) is not None
        note = f"GLB {len(out['glb']) / 1e6:.1f} MB, {len(mesh.faces)} faces, textured={textured}; " + note
    bench.add("e2e", f"prompt → 4 concepts ({size}², {steps} steps) → textured GLB", t_studio, t_bare, note=note)


def run(plan: Plan) -> Bench:
    import torch

    from pipelines.devices import quiet_libraries

    quiet_libraries()
    bench = Bench(plan)
    half = torch.float16 if plan.device == "cuda" else torch.float32
    bf16 = torch.bfloat16 if plan.device == "cuda" else torch.float32
    sdxl_what = f"{plan.size}² {plan.sdxl_steps} steps, {{}}"
    flux_what = f"{plan.size}² {plan.flux_steps} steps, {{}}"

    def concept(label, build, dtype, steps, guidance, compile):
        def run_section(deadline):
            concept_section(bench, label, build(plan, dtype), steps, guidance, deadline, compile=compile)
        return run_section

    def memory(deadline):
        steps = 2  # peak memory does not depend on the number of steps
        memory_section(bench, "memory sdxl", lambda: sdxl_pipeline(plan, half), steps, 5.0, deadline)
        memory_section(bench, "memory flux", lambda: flux_pipeline(plan, bf16), steps, 0.0, deadline)

    modes = ("none", "VAE slicing+tiling", "model CPU offload")
    e2e_what = f"prompt → 4 concepts ({plan.size}², {plan.sdxl_steps} steps) → textured GLB"
    # the sections whose length is easy to foresee first; compilation (minutes, varies) last
    bench.section("sdxl", [("sdxl", sdxl_what.format("SDPA"))],
                  concept("sdxl", sdxl_pipeline, half, plan.sdxl_steps, 5.0, False))
    bench.section("flux", [("flux-schnell", flux_what.format("SDPA"))],
                  concept("flux-schnell", flux_pipeline, bf16, plan.flux_steps, 0.0, False))
    bench.section("memory", [(f"memory {m}", f"peak VRAM, {mode}") for m in ("sdxl", "flux") for mode in modes], memory)
    bench.section("triposr", [("triposr", f"s/mesh, grid {plan.grid}")], lambda d: triposr_section(bench, d))
    bench.section("e2e", [("e2e", e2e_what)], lambda d: e2e_section(bench, d))
    bench.section("compile sdxl", [("sdxl", sdxl_what.format("torch.compile"))],
                  concept("sdxl", sdxl_pipeline, half, plan.sdxl_steps, 5.0, True), whole=True)
    bench.section("compile flux", [("flux-schnell", flux_what.format("torch.compile"))],
                  concept("flux-schnell", flux_pipeline, bf16, plan.flux_steps, 0.0, True), whole=True)
    return bench


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models on CPU: tests the script in < 60 s")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 440)")
    args = parser.parse_args(argv)
    import torch

    if args.smoke:
        plan = Plan(smoke=True, device="cpu", size=64, sdxl_steps=2, flux_steps=2, grid=32, compile_backend="eager",
                    budget_s=600.0, section_s={k: 300 for k in Plan(False, "cpu").section_s})
    elif not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device here; run it on a GPU machine, or use --smoke to test the script on CPU",
              file=sys.stderr)
        return 2
    else:
        plan = Plan(smoke=False, device="cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
    if args.budget:
        plan.budget_s = args.budget
    where = torch.cuda.get_device_name(0) if plan.device == "cuda" else "CPU (smoke: tiny configs)"
    print(f"bench/gpu.py on {where}; torch {torch.__version__}", flush=True)
    bench = run(plan)
    total = time.perf_counter() - bench.started
    print(f"\n## GPU benchmark ({where}, {total:.0f} s)\n")
    print(bench.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
