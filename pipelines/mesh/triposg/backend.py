"""TripoSG image -> detailed shape, and TripoSG-scribble sketch + prompt -> shape, behind ``MeshBackend``.

Steps: cut the object out (alpha or plain backdrop: our own cut-out, no segmentation network), encode
it with DINOv2 (and the prompt with CLIP for the scribble model), integrate the rectified flow from
noise to latent tokens with diffusers' ``FlowMatchEulerDiscreteScheduler``, decode the latents once
into the VAE's key/value set, query the signed field on a grid of ``options.grid`` cells a side
(coarse-to-fine above 128), marching cubes, then the shared post-processing (cleanup, decimation,
xatlas, texture bake). TripoSG
makes geometry only: the texture is the condition image projected from the front.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ...errors import InvalidInput
from ..base import MeshOptions, MeshResult, check_options

MAX_PROMPT_CHARS = 500
#: The published models see the object on white with a tenth of its longer side as border.
MARGIN = 1 / 12
#: Half-size of the box the VAE's field is queried in (the published default bounds).
BOUND = 1.005


@dataclass
class Sampling:
    """How the flow is integrated; the defaults of each published model (``for_model``)."""

    steps: int
    guidance: float
    num_tokens: int
    prompt_scale: float = 1.0  # scribble: weight of the text cross-attention
    sketch_scale: float = 0.4  # scribble: weight of the sketch cross-attention

    @classmethod
    def for_model(cls, takes_text: bool) -> "Sampling":
        # TripoSG: 50 steps, CFG 7, 2048 tokens; TripoSG-scribble is CFG-distilled: 16 steps, no CFG, 512 tokens.
        return cls(16, 0.0, 512) if takes_text else cls(50, 7.0, 2048)


def check_blank(image: Image.Image) -> None:
    """Refuse a picture of one flat colour (nothing to reconstruct)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"))
        if alpha.max() == 0:
            raise InvalidInput("image is fully transparent: there is no object to make 3D from")
        rgb = rgb[alpha > 127] if (alpha > 127).any() else rgb.reshape(-1, 3)
    if float(rgb.reshape(-1, 3).std(axis=0).max()) < 2.0:
        raise InvalidInput("image is a single flat colour: there is no object or sketch in it to make 3D from")


def front_projection_fn(prepared: Image.Image, bounds: np.ndarray, *, fill_holes: bool = False):
    """Colour of a point: the condition image's pixel in front of it, the object's box mapped onto the mesh's.

    Background pixels take the nearest object pixel's colour so silhouettes do not bake in white seams.
    ``fill_holes`` keeps the paper inside a sketch's outlines (its cut-out holds only the pen lines).
    """
    from scipy import ndimage

    rgba = np.asarray(prepared.convert("RGBA"), dtype=np.float32) / 255.0
    rgb, mask = rgba[..., :3], rgba[..., 3] > 0.5
    if fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    h, w = mask.shape
    r0, r1, c0, c1 = 0, h - 1, 0, w - 1
    if mask.any() and not mask.all():
        _, (iy, ix) = ndimage.distance_transform_edt(~mask, return_indices=True)
        rgb = rgb[iy, ix]
        ys, xs = np.nonzero(mask)
        r0, r1, c0, c1 = ys.min(), ys.max(), xs.min(), xs.max()
    (x0, y0, _), (x1, y1, _) = np.asarray(bounds, dtype=np.float64)

    def colour(points: np.ndarray) -> np.ndarray:
        u = (points[:, 0] - x0) / max(x1 - x0, 1e-9)
        v = (y1 - points[:, 1]) / max(y1 - y0, 1e-9)
        cols = np.clip(np.round(c0 + u * (c1 - c0)).astype(int), 0, w - 1)
        rows = np.clip(np.round(r0 + v * (r1 - r0)).astype(int), 0, h - 1)
        return rgb[rows, cols]

    return colour


class TripoSGBackend:
    """Image (or sketch + prompt, for the scribble folder) -> textured mesh with TripoSG."""

    def __init__(self, components, *, model_name: str, revision: str = "local", device: str = "cpu",
                 sampling: Sampling | None = None, dtype="float32", chunk: int = 65536):
        import torch

        self.components = components
        self.model_name = model_name
        self.revision = revision
        self.device = device
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        # bfloat16's 8-bit mantissa makes the field steppy near the surface: the VAE then stays in float32.
        self.vae_dtype = torch.float32 if self.dtype == torch.bfloat16 else self.dtype
        self.chunk = int(chunk)
        self.sampling = sampling or Sampling.for_model(components.takes_text)
        for name in ("transformer", "image_encoder", "text_encoder"):
            module = getattr(components, name)
            if module is not None:
                module.to(device=device, dtype=self.dtype)
        components.vae.to(device=device, dtype=self.vae_dtype)

    @property
    def name(self) -> str:
        return "triposg-scribble" if self.takes_text else "triposg"

    @property
    def takes_text(self) -> bool:
        return self.components.takes_text

    @classmethod
    def load(cls, path: str | Path, *, model_name: str, revision: str = "local", device: str = "cpu",
             dtype="float32", steps: int | None = None, num_tokens: int | None = None, **kw) -> "TripoSGBackend":
        from .loading import load_components

        components = load_components(path)
        sampling = Sampling.for_model(components.takes_text)
        if steps:
            sampling.steps = int(steps)
        if num_tokens:
            sampling.num_tokens = int(num_tokens)
        return cls(components, model_name=model_name, revision=revision, device=device, sampling=sampling,
                   dtype=dtype, **kw)

    # ------------------------------------------------------------------ steps
    def check_inputs(self, image, prompt: str | None) -> str | None:
        if not isinstance(image, Image.Image):
            raise InvalidInput(f"image must be a PIL image, got {type(image).__name__}")
        check_blank(image)
        if self.takes_text:
            if prompt is None or not isinstance(prompt, str) or not prompt.strip():
                raise InvalidInput(f"the model {self.model_name} makes 3D from a sketch AND a prompt; the prompt is "
                                   "empty: describe what the sketch shows")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise InvalidInput(f"prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted")
            return prompt.strip()
        if prompt:
            raise InvalidInput(f"the model {self.model_name} makes 3D from an image alone; it takes no prompt "
                               "(use the triposg-scribble backend for sketch + prompt)")
        return None

    def encode_image(self, rgb: Image.Image):
        import torch

        pixels = self.components.image_processor(images=rgb, return_tensors="pt").pixel_values
        with torch.inference_mode():
            return self.components.image_encoder(pixels.to(self.device, self.dtype)).last_hidden_state

    def encode_prompt(self, prompt: str):
        import torch

        tok = self.components.tokenizer
        ids = tok([prompt], max_length=tok.model_max_length, padding="max_length", truncation=True,
                  return_tensors="pt").input_ids
        with torch.inference_mode():
            return self.components.text_encoder(ids.to(self.device)).last_hidden_state

    def sample_latents(self, image_tokens, text_tokens, seed: int):
        """Integrate the flow from N(0, I) tokens (seeded on the CPU, so a seed reproduces across devices)."""
        import torch

        s = self.sampling
        transformer, scheduler = self.components.transformer, self.components.scheduler
        # TripoSG's schedule: sigma_i = 1 - i/N (shifted by the config), then 0.
        scheduler.set_timesteps(sigmas=list(1.0 - np.arange(s.steps) / s.steps), device=self.device)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        shape = (1, s.num_tokens, transformer.config.in_channels)
        latents = torch.randn(shape, generator=generator).to(self.device, self.dtype)
        guided = s.guidance > 1.0
        context, context_2 = (text_tokens, image_tokens) if self.takes_text else (image_tokens, None)
        if guided:
            context = torch.cat([torch.zeros_like(context), context])
            context_2 = None if context_2 is None else torch.cat([torch.zeros_like(context_2), context_2])
        with torch.inference_mode():
            for t in scheduler.timesteps:
                batch = torch.cat([latents] * 2) if guided else latents
                velocity = transformer(batch, t.expand(batch.shape[0]).to(self.dtype), context, context_2,
                                       scale=s.prompt_scale if self.takes_text else 1.0, scale_2=s.sketch_scale)
                if guided:
                    uncond, cond = velocity.chunk(2)
                    velocity = uncond + s.guidance * (cond - uncond)
                # TripoSG's velocity points from noise to shape; diffusers' flow-matching step takes the opposite sign.
                latents = scheduler.step(-velocity, t, latents, return_dict=False)[0].to(self.dtype)
        return latents

    def field(self, latents) -> Callable:
        """SDF function of (P, 3) points for these latents (the key/value set is decoded once)."""
        import torch

        vae = self.components.vae
        with torch.inference_mode():
            keys = vae.keys(latents.to(self.vae_dtype))

        def sdf(points):
            with torch.inference_mode():
                return vae.sdf(keys, points[None].to(self.device, self.vae_dtype))[0].float()

        return sdf

    # ------------------------------------------------------------------ MeshBackend
    def reconstruct(self, image, options: MeshOptions, on_progress: Callable[[str, float], None] | None = None,
                    *, prompt: str | None = None, timer=None) -> MeshResult:
        from ...background import on_background, prepare_image
        from ..post import StageTimer, finish
        from .extract import marching_cubes, sdf_grid

        # 1. Check inputs
        options = check_options(options)
        prompt = self.check_inputs(image, prompt)
        timer = timer or StageTimer()
        # 2. Cut out and centre on white (alpha or plain backdrop; never a segmentation network)
        with timer.stage("background"):
            prepared = prepare_image(image, margin=MARGIN)
            rgb = on_background(prepared.image)
        with timer.stage("reconstruction"):
            # 3. Encode the condition(s)
            if on_progress:
                on_progress("encoding the condition", 0.05)
            with timer.stage("encode"):
                image_tokens = self.encode_image(rgb)
                text_tokens = self.encode_prompt(prompt) if self.takes_text else None
            # 4. Denoise the latent tokens
            if on_progress:
                on_progress(f"denoising ({self.sampling.steps} steps)", 0.1)
            with timer.stage("denoise"):
                latents = self.sample_latents(image_tokens, text_tokens, options.seed)
            # 5. Query the field, extract the surface
            if on_progress:
                on_progress("querying the shape field", 0.35)
            with timer.stage("sdf_query"):
                values, queried = sdf_grid(self.field(latents), int(options.grid), BOUND, device=self.device,
                                           chunk=self.chunk)
            with timer.stage("marching_cubes"):
                raw = marching_cubes(values, BOUND)
        # 6. Clean, decimate, unwrap, bake the front projection, orient (TripoSG: +y up, front +z), scale
        if on_progress:
            on_progress("cleaning, unwrapping and baking the texture", 0.5)
        colour = front_projection_fn(prepared.image, raw.bounds, fill_holes=self.takes_text)
        mesh, report = finish(raw, colour, options, up="y", front="+z", timer=timer)
        s = self.sampling
        params = {"grid": int(options.grid), "points_queried": int(queried), "steps": s.steps,
                  "guidance": s.guidance, "tokens": s.num_tokens, "seed": int(options.seed),
                  "dtype": str(self.dtype).removeprefix("torch."),
                  "mask": prepared.mask_source, "texture": "front projection", "timings": timer.timings, **report}
        if self.takes_text:
            params.update(prompt=prompt, prompt_scale=s.prompt_scale, sketch_scale=s.sketch_scale)
        return MeshResult(mesh=mesh, backend=self.name, model=self.model_name, revision=self.revision, params=params)
