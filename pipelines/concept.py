"""Concept images: text -> N images with diffusers, one seeded generator per image.

``ConceptModel`` wraps a loaded diffusers text-to-image pipeline; load it once and call
``generate`` many times. ``check_request`` validates every parameter before any model work.
"""
from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .errors import InvalidInput

MAX_SEED = 2**32 - 1


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
    req.n, req.steps, req.width, req.height = int(req.n), int(req.steps), int(req.width), int(req.height)
    req.guidance = float(req.guidance)
    req.seed = None if req.seed is None else int(req.seed)
    return req


class ConceptModel:
    """A loaded text-to-image pipeline plus the identity (name, revision) recorded with its images."""

    def __init__(self, pipe, *, name: str, revision: str, device: str):
        self.pipe = pipe
        self.name = name
        self.revision = revision
        self.device = device

    @classmethod
    def load(cls, path: str | Path, *, name: str, revision: str = "local", device: str = "cpu", dtype=None):
        """Load with diffusers' own loader: local files only, safetensors only."""
        from diffusers import AutoPipelineForText2Image

        from .devices import quiet_libraries

        quiet_libraries()
        kwargs = {"local_files_only": True, "use_safetensors": True}
        if dtype is not None:
            kwargs["torch_dtype"] = dtype
        pipe = AutoPipelineForText2Image.from_pretrained(str(path), **kwargs)
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, name=name, revision=revision, device=device)

    def generate(
        self,
        req: ConceptRequest,
        *,
        limits: ConceptLimits = ConceptLimits(),
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[ConceptImage]:
        """Run the pipeline once for all N images; each image has its own seeded generator."""
        from .devices import make_generator

        # 1. Check inputs
        req = check_request(req, limits)
        seeds = req.resolved_seeds()
        generators = [make_generator(self.device, s) for s in seeds]
        callback = None
        if on_step is not None:

            def callback(pipe, step, timestep, kwargs):  # diffusers' callback_on_step_end
                on_step(step + 1, req.steps)
                return kwargs

        # 2. Denoise
        result = self.pipe(
            prompt=req.prompt,
            negative_prompt=req.negative_prompt or None,
            num_images_per_prompt=req.n,
            generator=generators,
            num_inference_steps=req.steps,
            guidance_scale=req.guidance,
            width=req.width,
            height=req.height,
            output_type="pil",
            callback_on_step_end=callback,
        )
        # 3. Attach the parameters that reproduce each image alone
        out = []
        for image, seed in zip(result.images, seeds):
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
                "scheduler": type(self.pipe.scheduler).__name__,
            }
            out.append(ConceptImage(image=image, seed=seed, params=params))
        return out


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
    "png_bytes",
    "read_png_metadata",
    "params_summary",
]
