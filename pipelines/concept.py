"""Concept images: text, sketch or image -> N images with diffusers, one seeded generator per image.

``ConceptModel`` wraps a loaded diffusers text-to-image pipeline; the img2img and sketch (ControlNet)
pipelines are built from the same modules with ``from_pipe``, so switching mode never reloads
weights. ``check_request`` validates every parameter before any model work.
"""
from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .adapters import AdapterSet, AdapterSource, AdapterSpec, check_adapters

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .errors import InvalidInput

MAX_SEED = 2**32 - 1
MODES = ("text", "img2img", "sketch")

#: Scheduler choices by short name; a model offers those its default scheduler lists as compatible.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "pndm": "PNDMScheduler",
    "heun": "HeunDiscreteScheduler",
    "flow_euler": "FlowMatchEulerDiscreteScheduler",
}


@dataclass(frozen=True)
class ConceptLimits:
    """Bounds on what a request may ask for; the application sets them from its settings."""

    max_prompt_chars: int = 1000
    max_steps: int = 150
    max_images: int = 16
    min_side: int = 64
    max_side: int = 2048
    max_guidance: float = 30.0


@dataclass
class ConceptRequest:
    """What a designer asks for. ``seed=None`` draws a random base seed; image i uses seed + i."""

    prompt: str
    negative_prompt: str = ""
    n: int = 4
    seed: int | None = None
    steps: int = 30
    guidance: float = 7.0
    width: int = 512
    height: int = 512
    seeds: list[int] = field(default_factory=list)
    mode: str = "text"
    #: img2img: the starting image; sketch: the clean line image (white lines on black).
    image: Image.Image | None = None
    #: img2img: how much to change the image (0-1); sketch: how strongly the sketch holds (0-1).
    strength: float | None = None
    scheduler: str | None = None
    adapters: list[AdapterSpec] = field(default_factory=list)

    def resolved_seeds(self) -> list[int]:
        if self.seeds:
            return list(self.seeds)
        base = self.seed if self.seed is not None else random.randint(0, MAX_SEED)
        return [(base + i) % (MAX_SEED + 1) for i in range(self.n)]


@dataclass
class ConceptImage:
    """One generated image and the exact parameters that reproduce it alone."""

    image: Image.Image
    seed: int
    params: dict


DEFAULT_STRENGTH = {"img2img": 0.6, "sketch": 0.8}


def sketch_fallback_strength(strength: float) -> float:
    """img2img denoising for a sketch when no sketch model is loaded: the more the sketch should
    hold (``strength`` -> 1) the less the drawing is changed (0.95 down to 0.35)."""
    return round(0.35 + 0.6 * (1.0 - strength), 4)


def _check_number(name: str, value, lo, hi, *, integer: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")
    if integer and int(value) != value:
        raise InvalidInput(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}, got {value!r}")


def check_request(req: ConceptRequest, limits: ConceptLimits = ConceptLimits()) -> ConceptRequest:
    """Validate ``req`` and return it with integer fields normalised; raise ``InvalidInput``."""
    if not isinstance(req.prompt, str) or not req.prompt.strip():
        raise InvalidInput("prompt is empty; describe the product you want to see")
    if len(req.prompt) > limits.max_prompt_chars:
        raise InvalidInput(
            f"prompt is {len(req.prompt)} characters long; the limit is {limits.max_prompt_chars}"
        )
    if not isinstance(req.negative_prompt, str) or len(req.negative_prompt) > limits.max_prompt_chars:
        raise InvalidInput(f"negative prompt must be text of at most {limits.max_prompt_chars} characters")
    _check_number("number of images", req.n, 1, limits.max_images, integer=True)
    _check_number("steps", req.steps, 1, limits.max_steps, integer=True)
    _check_number("guidance", req.guidance, 0.0, limits.max_guidance, integer=False)
    for name in ("width", "height"):
        value = getattr(req, name)
        _check_number(name, value, limits.min_side, limits.max_side, integer=True)
        if int(value) % 8:
            raise InvalidInput(f"{name} must be a multiple of 8, got {value!r} (try {int(value) // 8 * 8})")
    if req.seed is not None:
        _check_number("seed", req.seed, 0, MAX_SEED, integer=True)
    for s in req.seeds:
        _check_number("seed", s, 0, MAX_SEED, integer=True)
    if req.seeds and len(req.seeds) != req.n:
        raise InvalidInput(f"{len(req.seeds)} seeds given for {req.n} images")
    if req.mode not in MODES:
        raise InvalidInput(f"mode {req.mode!r} is not one of {', '.join(MODES)}")
    if req.mode == "text":
        if req.image is not None:
            raise InvalidInput("an image was given for text-to-image; use mode 'img2img' or 'sketch'")
    else:
        if not isinstance(req.image, Image.Image):
            what = "a sketch" if req.mode == "sketch" else "a starting image"
            raise InvalidInput(f"mode {req.mode!r} needs {what}")
        max_pixels = limits.max_side * limits.max_side
        if req.image.width * req.image.height > max_pixels:
            raise InvalidInput(f"image of {req.image.width}x{req.image.height} pixels is over the limit of "
                               f"{max_pixels} pixels")
        if req.strength is None:
            req.strength = DEFAULT_STRENGTH[req.mode]
        _check_number("strength", req.strength, 0.0, 1.0, integer=False)
        if req.mode == "img2img" and int(req.steps * req.strength) < 1:
            raise InvalidInput(f"strength {req.strength} x {req.steps} steps leaves no denoising step; "
                               f"raise the strength or the steps (strength x steps must be at least 1)")
        req.strength = float(req.strength)
    if req.scheduler is not None and req.scheduler not in SCHEDULERS:
        raise InvalidInput(f"scheduler {req.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    req.n, req.steps, req.width, req.height = int(req.n), int(req.steps), int(req.width), int(req.height)
    req.guidance = float(req.guidance)
    req.seed = None if req.seed is None else int(req.seed)
    return req


class ConceptModel:
    """A loaded text-to-image pipeline, its sibling pipelines and the identity recorded with images."""

    def __init__(self, pipe, *, name: str, revision: str, device: str):
        self.pipe = pipe
        self.name = name
        self.revision = revision
        self.device = device
        self.controlnet = None
        self.controlnet_name = ""
        self.controlnet_revision = ""
        self.memory_modes: list[str] = []
        self.adapters = AdapterSet()
        self._pipes: dict[str, object] = {"text": pipe}
        self._default_scheduler = pipe.scheduler
        self._schedulers: dict[str, object] = {}

    @classmethod
    def load(cls, path: str | Path, *, name: str, revision: str = "local", device: str = "cpu", dtype=None,
             memory=None):
        """Load with diffusers' own loader: local files only, safetensors only."""
        from diffusers import AutoPipelineForText2Image

        from .devices import apply_memory_options, quiet_libraries

        quiet_libraries()
        kwargs = {"local_files_only": True, "use_safetensors": True}
        if dtype is not None:
            kwargs["torch_dtype"] = dtype
        pipe = AutoPipelineForText2Image.from_pretrained(str(path), **kwargs)
        offload = memory is not None and memory.offload != "none" and device != "cpu"
        if not offload:  # offload hooks place the sub-models themselves
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        model = cls(pipe, name=name, revision=revision, device=device)
        if memory is not None:
            model.memory_modes = apply_memory_options(pipe, memory, device)
        return model

    # ------------------------------------------------------------------ modes
    def attach_controlnet(self, path: str | Path, *, name: str, revision: str = "local") -> None:
        """Load the sketch ControlNet (once); the sketch pipeline then shares every other module."""
        if self.controlnet is not None:
            return
        from diffusers import ControlNetModel

        dtype = getattr(self.pipe.unet, "dtype", None) if hasattr(self.pipe, "unet") else None
        kwargs = {"local_files_only": True, "use_safetensors": True}
        if dtype is not None:
            kwargs["torch_dtype"] = dtype
        net = ControlNetModel.from_pretrained(str(path), **kwargs)
        net.to(self.device)
        self.controlnet, self.controlnet_name, self.controlnet_revision = net, name, revision
        self._pipes.pop("sketch", None)

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this: the VAE's downsampling, times 2 where the
        latents are packed in 2x2 patches (FLUX)."""
        vae = getattr(self.pipe, "vae", None)
        factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8
        return factor * 2 if hasattr(self.pipe, "transformer") and hasattr(self.pipe, "_pack_latents") else factor

    @property
    def flow_matching(self) -> bool:
        """True for rectified-flow models (FLUX): img2img there counts its steps differently."""
        return type(self._default_scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"

    def denoising_steps(self, steps: int, strength: float) -> int:
        """How many steps an img2img run of ``steps`` at ``strength`` really makes (as diffusers counts)."""
        if self.flow_matching:  # FluxImg2ImgPipeline rounds the skipped steps down
            return steps - int(max(steps - steps * strength, 0))
        return max(1, min(int(steps * strength), steps))

    @property
    def sketch_backend(self) -> str:
        """'controlnet' when a sketch model is attached, else 'img2img' (the fallback)."""
        return "controlnet" if self.controlnet is not None else "img2img"

    def pipeline(self, mode: str):
        """The pipeline for ``mode``, built on first use from the loaded modules (never a reload)."""
        if mode not in MODES:
            raise InvalidInput(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "sketch" and self.controlnet is None:
            mode = "img2img"
        if mode not in self._pipes:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

            if mode == "img2img":
                built = AutoPipelineForImage2Image.from_pipe(self.pipe)
            else:
                built = AutoPipelineForText2Image.from_pipe(self.pipe, controlnet=self.controlnet)
            built.set_progress_bar_config(disable=True)
            self._pipes[mode] = built
        return self._pipes[mode]

    def scheduler_names(self) -> list[str]:
        """Short names of the schedulers this model can use (its own first)."""
        default = type(self._default_scheduler)
        allowed = {default.__name__} | {c.__name__ for c in getattr(self._default_scheduler, "compatibles", [])}
        own = [k for k, v in SCHEDULERS.items() if v == default.__name__]
        return own + [k for k, v in SCHEDULERS.items() if v in allowed and k not in own]

    def _scheduler(self, name: str | None):
        if name is None:
            return self._default_scheduler
        if name not in self.scheduler_names():
            raise InvalidInput(f"scheduler {name!r} does not work with {self.name}; "
                               f"choose one of {', '.join(self.scheduler_names())}")
        if name not in self._schedulers:
            import diffusers

            cls = getattr(diffusers, SCHEDULERS[name])
            if type(self._default_scheduler) is cls:
                self._schedulers[name] = self._default_scheduler
            else:
                self._schedulers[name] = cls.from_config(self._default_scheduler.config)
        return self._schedulers[name]

    # ------------------------------------------------------------------ generate
    def generate(
        self,
        req: ConceptRequest,
        *,
        limits: ConceptLimits = ConceptLimits(),
        on_step: Callable[[int, int], None] | None = None,
        adapter_source: AdapterSource | None = None,
    ) -> list[ConceptImage]:
        """Run the pipeline for all N images (split on out-of-memory); each image has its own generator."""
        import inspect

        from .devices import make_generator, run_with_memory_fallback

        # 1. Check inputs
        req = check_request(req, limits)
        check_adapters(req.adapters, adapter_source)
        self._scheduler(req.scheduler)
        seeds = req.resolved_seeds()

        # 2. Choose the pipeline, scheduler and adapters (all share the loaded modules)
        pipe = self.pipeline(req.mode)
        pipe.scheduler = self._scheduler(req.scheduler)
        adapters = self.adapters.activate(self.pipe, list(req.adapters), adapter_source)
        accepted = set(inspect.signature(pipe.__call__).parameters)

        # 3. Prepare the conditioning for the mode
        from .sketch import fit_into

        kwargs = {"num_inference_steps": req.steps, "guidance_scale": req.guidance, "output_type": "pil"}
        extra: dict = {"mode": req.mode}
        multiple = self.size_multiple
        for label, value in (("width", req.width), ("height", req.height)):
            if value % multiple:
                raise InvalidInput(f"{label} {value} does not suit {self.name}: it needs a multiple of {multiple} "
                                   f"(try {max(multiple, value // multiple * multiple)})")
        if req.mode == "text" or (req.mode == "sketch" and self.controlnet is not None) or {"width", "height"} <= accepted:
            # img2img pipelines that take a size (FLUX) would otherwise fall back to their default size
            kwargs.update(width=req.width, height=req.height)
        if req.mode == "img2img":
            kwargs.update(image=fit_into(req.image, req.width, req.height, fill=(255, 255, 255)), strength=req.strength)
            extra["strength"] = req.strength
        elif req.mode == "sketch" and self.controlnet is not None:
            kwargs.update(image=fit_into(req.image, req.width, req.height, fill=(0, 0, 0)),
                          controlnet_conditioning_scale=req.strength)
            extra.update(strength=req.strength, sketch_backend="controlnet", sketch_model=self.controlnet_name,
                         sketch_revision=self.controlnet_revision)
        elif req.mode == "sketch":
            # no sketch model: img2img from the drawing on white paper (dark lines on white)
            from PIL import ImageOps

            paper = ImageOps.invert(req.image.convert("RGB"))
            # at least one denoising step, however few steps the draft preset asks for
            denoise = max(sketch_fallback_strength(req.strength), min(1.0, 1.0 / req.steps + 1e-6))
            if self.flow_matching:
                # a flow-matching img2img that runs every step starts from sigma 1, pure noise: the
                # drawing would be ignored, so at least the first step is always skipped
                if req.steps < 2:
                    raise InvalidInput(f"sketch on {self.name} needs at least 2 steps (got {req.steps}): "
                                       f"with one step the drawing would be replaced by noise")
                denoise = min(denoise, round((req.steps - 1) / req.steps, 6))
            kwargs.update(image=fit_into(paper, req.width, req.height, fill=(255, 255, 255)), strength=denoise)
            extra.update(strength=req.strength, sketch_backend="img2img", img2img_strength=denoise)
        if req.negative_prompt and "negative_prompt" in accepted:
            kwargs["negative_prompt"] = req.negative_prompt
        if on_step is not None:
            total = self.denoising_steps(req.steps, kwargs["strength"]) if "strength" in kwargs else req.steps

            def callback(pipe, step, timestep, cb_kwargs):  # diffusers' callback_on_step_end
                on_step(min(step + 1, total), total)
                return cb_kwargs

            kwargs["callback_on_step_end"] = callback

        # 4. Denoise, in smaller batches / with offload if the device runs out of memory
        notes: list[str] = []

        def run_batch(chunk_seeds):
            result = pipe(
                prompt=req.prompt,
                num_images_per_prompt=len(chunk_seeds),
                generator=[make_generator(self.device, s) for s in chunk_seeds],
                **kwargs,
            )
            return result.images

        images = run_with_memory_fallback(run_batch, seeds, pipe=pipe, device=self.device, notes=notes)

        # 5. Attach the parameters that reproduce each image alone
        out = []
        for image, seed in zip(images, seeds):
            params = {
                "prompt": req.prompt,
                "negative_prompt": req.negative_prompt,
                "seed": seed,
                "steps": req.steps,
                "guidance": req.guidance,
                "width": req.width,
                "height": req.height,
                "model": self.name,
                "revision": self.revision,
                "scheduler": req.scheduler or _short_name(type(self._default_scheduler).__name__),
                "adapters": adapters,
                **extra,
            }
            if notes:
                params["memory_fallbacks"] = list(notes)
            out.append(ConceptImage(image=image, seed=seed, params=params))
        return out


def _short_name(class_name: str) -> str:
    return next((k for k, v in SCHEDULERS.items() if v == class_name), class_name)


PNG_KEY_PREFIX = "studio:"


def png_bytes(image: Image.Image, metadata: dict) -> bytes:
    """Encode ``image`` as PNG with every metadata item as a text chunk (``studio:<key>``).

    The whole dict is also stored as JSON under ``studio:params`` so it round-trips with types.
    """
    info = PngInfo()
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        info.add_itxt(PNG_KEY_PREFIX + key, text)
    info.add_itxt(PNG_KEY_PREFIX + "params", json.dumps(metadata, sort_keys=True, ensure_ascii=False))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_png_metadata(source: str | Path | bytes) -> dict:
    """The dict written by ``png_bytes`` (empty when the PNG carries none)."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
        text = dict(getattr(img, "text", {}) or {})
    raw = text.get(PNG_KEY_PREFIX + "params")
    return json.loads(raw) if raw else {}


def params_summary(params: dict) -> str:
    """One short line a designer reads under a thumbnail."""
    return f"seed {params.get('seed')} · {params.get('steps')} steps · cfg {params.get('guidance')}"


__all__ = [
    "ConceptImage",
    "ConceptLimits",
    "ConceptModel",
    "ConceptRequest",
    "check_request",
    "MODES",
    "SCHEDULERS",
    "png_bytes",
    "read_png_metadata",
    "params_summary",
]
