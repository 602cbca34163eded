"""GPU benchmark of the shipped models at full size, with random weights built from the published configs.

Speed and memory do not depend on weight values, so nothing is downloaded: SDXL base (UNet, VAE,
CLIP ViT-L and OpenCLIP bigG text encoders), FLUX.1-schnell (transformer, VAE, CLIP, T5-XXL) and
TripoSR (DINO ViT-B/16, 32x32x1024 triplane transformer, NeRF MLP) are built from their published
configuration values, parameters allocated directly on the GPU in the run's dtype, and so are TripoSG
(DINOv2-large, the 21-layer 2048-wide flow DiT, the SDF VAE) and the MV-Adapter branches on the SDXL UNet.
Sections:

- SDXL 1024x1024, 30 steps, fp16 and FLUX.1-schnell 1024x1024, 4 steps, bf16: s/image with SDPA and
  with ``torch.compile`` (regional: the repeated transformer blocks), the studio's ``ConceptModel.generate`` beside the bare diffusers call.
- Peak VRAM of SDXL and FLUX per memory mode (none / VAE slicing + tiling / model CPU offload).
- TripoSR s/mesh at full size (grid 256): the studio's ``LRMBackend.reconstruct`` (textured mesh)
  beside the bare network + density grid + marching cubes.
- Prompt -> 4 SDXL concepts -> TripoSR -> textured GLB, studio code beside the bare calls.
- TripoSG s/mesh at grid 256 and 512 (50 steps, CFG 7, 2048 tokens): ``TripoSGBackend.reconstruct``
  beside the bare DINOv2 + flow + coarse-to-fine SDF + marching cubes.
- Multi-view texture of one mesh (MV-Adapter on SDXL, 6 views at 768 px): geometry maps, view
  generation (beside plain SDXL making 6 images of that size) and back-projection, per stage.

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
#: VAST-AI/TripoSG transformer/config.json (TripoSGDiTModel)
TRIPOSG_TRANSFORMER = dict(num_attention_heads=16, width=2048, in_channels=64, num_layers=21, cross_attention_dim=1024)
#: VAST-AI/TripoSG vae/config.json (published class name Tripo2VAEModel)
TRIPOSG_VAE = dict(in_channels=3, latent_channels=64, num_attention_heads=8, width_encoder=512, width_decoder=1024,
                   num_layers_encoder=8, num_layers_decoder=16, embedding_type="frequency", embed_frequency=8,
                   embed_include_pi=False)
#: facebook/dinov2-large (TripoSG image_encoder_dinov2) and its BitImageProcessor (feature_extractor_dinov2)
DINOV2_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4, patch_size=14,
                    image_size=518, layer_norm_eps=1e-6, layerscale_value=1.0, hidden_act="gelu")
DINOV2_PROCESSOR = dict(do_resize=True, size={"shortest_edge": 256}, resample=3, do_center_crop=True,
                        crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                        do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                        do_convert_rgb=True)
TRIPOSG_GRIDS = (256, 512)
#: MV-Adapter ig2mv SDXL: six 768 px views; the published recipe takes 50 steps at CFG 3
MV_VIEW_SIZE, MV_PUBLISHED_STEPS, MV_STEPS = 768, 50, 30


@dataclass
class Plan:
    """Sizes of one run: the real ones on CUDA, tiny ones for ``--smoke``."""

    smoke: bool
    device: str
    size: int = 1024
    sdxl_steps: int = 30
    flux_steps: int = 4
    grid: int = TRIPOSR_GRID
    triposg_grids: tuple = TRIPOSG_GRIDS
    view_size: int = MV_VIEW_SIZE
    mv_steps: int = MV_STEPS
    budget_s: float = 440.0  # the whole run (8 minutes minus start-up and margin)
    section_s: dict = field(default_factory=lambda: {"sdxl": 50, "flux": 70, "memory": 120, "triposr": 50,
                                                      "e2e": 80, "triposg": 70, "texture": 100,
                                                      "compile sdxl": 70, "compile flux": 80})
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
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        model = build()
    fill_parameters(model, device, dtype)
    return model.to(device=device, dtype=dtype).eval()


def fill_parameters(model, device: str, dtype, *, only_meta: bool = False) -> None:
    """Random values for every parameter (``only_meta``: those still on the meta device) on ``device``."""
    import torch
    from accelerate.utils import set_module_tensor_to_device

    for name, param in list(model.named_parameters()):
        if only_meta and param.device.type != "meta":
            continue
        if param.ndim == 1:
            value = torch.ones if name.endswith(("weight", "scale")) else torch.zeros
            tensor = value(param.shape, device=device, dtype=dtype)
        else:  # variance-preserving, so activations stay of order one through deep stacks
            fan_in = max(1, param[0].numel())
            tensor = torch.randn(param.shape, device=device, dtype=dtype) * fan_in**-0.5
        set_module_tensor_to_device(model, name, device, value=tensor)


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


def triposg_backend(plan: Plan):
    """TripoSG at full size (or the twin's tiny configs in smoke runs) behind the studio's ``TripoSGBackend``.

    Random weights give a field with no surface, so the VAE decoder's query path carries a planted round
    prior, as the TripoSG twin does: the sum of the first-octave cosines of the query point, largest at
    the centre; the last block's attention and feed-forward outputs are scaled down, not removed.
    """
    import math

    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from pipelines.mesh.triposg.backend import Sampling, TripoSGBackend
    from pipelines.mesh.triposg.loading import TripoSGComponents
    from pipelines.mesh.triposg.models import TripoSGDiTModel, TripoSGVAEModel

    dit, vae_cfg, dino, processor = TRIPOSG_TRANSFORMER, TRIPOSG_VAE, DINOV2_LARGE, DINOV2_PROCESSOR
    sampling = Sampling.for_model(takes_text=False)  # published: 50 steps, CFG 7, 2048 tokens
    if plan.smoke:
        from pipelines.twins import triposg as twin

        dit, vae_cfg = _config(twin.tiny_transformer()), _config(twin.tiny_vae())
        dino = {k: v for k, v in twin.tiny_dinov2().config.to_dict().items() if not k.startswith("_")}
        processor = {k: v for k, v in twin.feature_extractor_config().items() if k != "image_processor_type"}
        sampling = Sampling(steps=2, guidance=7.0, num_tokens=64)
    dtype = torch.bfloat16 if plan.device == "cuda" else torch.float32
    dev = plan.device
    vae = materialize(lambda: TripoSGVAEModel.from_config(vae_cfg), dev, torch.float32)
    dec, f = vae.decoder, vae.config.embed_frequency
    cos_first_octave = [3 + 3 * f + axis * f for axis in range(3)]
    level = 2.0 + math.cos(0.6)  # surface at radius 0.6 along the axes
    with torch.no_grad():
        dec.proj_query.weight.mul_(0.02)
        dec.proj_query.bias.zero_()
        dec.proj_query.weight[:3] = 0.0
        dec.proj_query.weight[0, cos_first_octave] = 1.0
        dec.proj_query.bias[:3] = torch.tensor([-level, 0.5, -0.5], device=dev)
        for linear in (dec.blocks[-1].attn2.to_out[0], dec.blocks[-1].ff.net[2]):
            linear.weight.mul_(0.05)
            linear.bias.zero_()
        dec.proj_out.weight.zero_()
        dec.proj_out.weight[0, 0] = -1.0
        dec.proj_out.bias.zero_()
    components = TripoSGComponents(
        transformer=materialize(lambda: TripoSGDiTModel.from_config(dit), dev, dtype), vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False),
        image_encoder=materialize(lambda: Dinov2Model(Dinov2Config(**dino)), dev, dtype),
        image_processor=BitImageProcessor(**processor),
    )
    return TripoSGBackend(components, model_name="triposg-random", revision="random-weights", device=dev,
                          sampling=sampling, dtype=dtype)


def triposg_bare(backend, image, grid: int):
    """The networks and extraction alone: DINOv2, the flow, the SDF grid, marching cubes (no cut-out, no
    cleanup, decimation, unwrap or bake)."""
    from pipelines.mesh.triposg.backend import BOUND
    from pipelines.mesh.triposg.extract import marching_cubes, sdf_grid

    latents = backend.sample_latents(backend.encode_image(image.convert("RGB")), None, seed=0)
    values, _ = sdf_grid(backend.field(latents), grid, BOUND, device=backend.device, chunk=backend.chunk)
    return marching_cubes(values, BOUND)


def triposg_section(bench: Bench, deadline: float) -> None:
    from pipelines.mesh.base import MeshOptions

    plan = bench.plan
    backend = triposg_backend(plan)
    image = object_photo()
    s = backend.sampling
    t_studio = 0.0
    for i, grid in enumerate(plan.triposg_grids):
        if time.perf_counter() > deadline - 2 * t_studio:  # a doubled grid takes longer than the last one
            return  # the caller marks the rows left as skipped
        if not i:
            triposg_bare(backend, image, grid)  # warm-up
        t_bare = timed(plan.device, lambda: triposg_bare(backend, image, grid))
        options = MeshOptions(grid=grid, texture_size=1024 if not plan.smoke else 128,
                              face_budget=20000 if not plan.smoke else 500)
        holder = {}
        t_studio = timed(plan.device, lambda: holder.update(r=backend.reconstruct(image, options)))
        result = holder["r"]
        stages = result.params["timings"]
        denoise, query = stages.get("denoise", 0.0), stages.get("sdf_query", 0.0)
        bench.add("triposg", f"s/mesh, grid {grid}", t_studio, t_bare,
                  note=f"{s.steps} steps, CFG {s.guidance:g}, {s.num_tokens} tokens, {backend.dtype} (VAE "
                       f"{backend.vae_dtype}); denoise {denoise:.2f} s, SDF query {query:.2f} s "
                       f"({result.params['points_queried']} points); studio: textured, {len(result.mesh.faces)} "
                       "faces; bare: networks + SDF grid + marching cubes".replace("torch.", ""))


def uv_sphere(subdivisions: int, texture_size: int):
    """A UV-unwrapped, textured icosphere, stretched along y: the mesh the texture section paints."""
    import numpy as np
    import trimesh
    from PIL import Image

    from pipelines.mesh.post import unwrap_uv

    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.3)
    sphere.vertices[:, 1] *= 1.5
    vertices, faces, uv = unwrap_uv(sphere, resolution=texture_size)
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.new("RGB", (texture_size, texture_size), (200, 200, 200)))
    return trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=False,
                           visual=trimesh.visual.TextureVisuals(uv=np.asarray(uv), material=material))


def texture_section(bench: Bench, deadline: float) -> None:
    """Geometry maps -> six MV-Adapter views on SDXL -> back-projection for one mesh, per stage."""
    import torch
    from accelerate import init_empty_weights

    from pipelines.devices import make_generator
    from pipelines.texture.mv_adapter import (NUM_VIEWS, MultiViewGenerator, condition_encoder,
                                              install_processors, shifted_snr_scheduler)
    from pipelines.texture.paint import PaintOptions, paint_mesh

    plan = bench.plan
    dtype = torch.float16 if plan.device == "cuda" else torch.float32
    size, steps, guidance = plan.view_size, plan.mv_steps, 3.0
    pipe = sdxl_pipeline(plan, dtype)

    def bare():  # plain SDXL, no adapter: six images of the views' size, same steps and guidance
        with torch.inference_mode():
            pipe(prompt="high quality", num_images_per_prompt=NUM_VIEWS, num_inference_steps=steps,
                 guidance_scale=guidance, width=size, height=size, generator=make_generator(plan.device, 1))

    with torch.inference_mode():
        pipe(prompt="high quality", num_inference_steps=1, width=size, height=size)  # warm-up
    t_bare = timed(plan.device, bare)

    with init_empty_weights(include_buffers=False):
        install_processors(pipe.unet, copy_weights=False)
    fill_parameters(pipe.unet, plan.device, dtype, only_meta=True)
    encoder = materialize(lambda: condition_encoder(pipe.unet, pipe.vae_scale_factor), plan.device, dtype)
    pipe.scheduler = shifted_snr_scheduler(pipe.scheduler)
    if getattr(pipe.vae.config, "force_upcast", False):  # SDXL's VAE overflows in float16
        pipe.vae.to(torch.float32)
    generator = MultiViewGenerator(pipe, encoder, model_name="mv-adapter-random", revision="random-weights",
                                   base_name="sdxl-random", base_revision="random-weights")
    texture_size = 1024 if not plan.smoke else 128
    mesh = uv_sphere(5 if not plan.smoke else 2, texture_size)
    reference = object_photo()
    paint_mesh(mesh, reference, generator, PaintOptions(view_size=size, steps=1, guidance=guidance))  # warm-up
    if time.perf_counter() > deadline:
        return
    start = time.perf_counter()
    _, record, views = paint_mesh(mesh, reference, generator, PaintOptions(view_size=size, steps=steps,
                                                                          guidance=guidance))
    sync(plan.device)
    total = time.perf_counter() - start
    t = record["timings"]
    fewer = f" (published recipe: {MV_PUBLISHED_STEPS}; fewer to fit the run budget)" if steps < MV_PUBLISHED_STEPS else ""
    bench.add("texture", f"geometry maps, {NUM_VIEWS} views {size}²", t["geometry_maps"],
              note=f"numpy rasteriser, {len(mesh.faces)} faces")
    bench.add("texture", f"{NUM_VIEWS} views {size}², {steps} steps", t["multiview"], t_bare,
              note=f"MV-Adapter on SDXL, CFG {guidance:g}, {dtype}{fewer}; bare: plain SDXL, "
                   f"{NUM_VIEWS} images, no adapter".replace("torch.", ""))
    bench.add("texture", f"back-projection → {texture_size}² texture", t["backproject"],
              note=f"seam check {t['seam_check']:.2f} s; texels seen {record['texels_seen']:.2f}")
    bench.add("texture", "s/mesh, maps → views → back-projection", total,
              note=f"{len(views)} views; paint_mesh end to end")


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
    bench.section("triposg", [("triposg", f"s/mesh, grid {g}") for g in plan.triposg_grids],
                  lambda d: triposg_section(bench, d))
    texture_rows = [f"geometry maps, 6 views {plan.view_size}²", f"6 views {plan.view_size}², {plan.mv_steps} steps",
                    f"back-projection → {1024 if not plan.smoke else 128}² texture",
                    "s/mesh, maps → views → back-projection"]
    bench.section("texture", [("texture", what) for what in texture_rows], lambda d: texture_section(bench, d))
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
                    triposg_grids=(32, 64), view_size=64, mv_steps=2,
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
