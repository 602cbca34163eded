"""Sketch input: a photo/scan of paper or a drawing from the browser -> clean line art.

ControlNet scribble models expect white lines on black; img2img wants dark lines on white paper.
``sketch_to_lines`` produces both from any sketch, refusing an empty one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .errors import InvalidImage, InvalidInput

MODES = ("auto", "lines", "edges")

#: Fewer line pixels than this fraction of the canvas is an empty sketch.
MIN_INK = 0.0005


@dataclass
class SketchLines:
    """Clean lines of a sketch: ``control`` white-on-black, ``paper`` black-on-white, ``ink`` fraction."""

    control: Image.Image
    paper: Image.Image
    ink: float
    inverted: bool
    mode: str


def check_pixels(image: Image.Image, max_pixels: int, label: str = "sketch") -> None:
    w, h = image.size
    if w * h > max_pixels:
        raise InvalidImage(f"{label}: {w}x{h} = {w * h} pixels is over the limit of {max_pixels} pixels")


def compose_layers(value: dict, *, max_pixels: int) -> Image.Image:
    """Flatten what a Gradio sketchpad / image editor sends (``background``, ``layers``, ``composite``).

    Strokes are RGBA layers on a transparent canvas; they are laid over the background (white when
    there is none) so an empty canvas stays white and is later refused as an empty sketch.
    """
    if not isinstance(value, dict) or not {"background", "layers", "composite"} & set(value):
        raise InvalidInput("sketch: expected an editor value with 'background', 'layers' or 'composite'")

    def as_image(item):
        if item is None:
            return None
        if isinstance(item, Image.Image):
            img = item
        elif isinstance(item, np.ndarray):
            img = Image.fromarray(item)
        else:
            raise InvalidInput(f"sketch: a layer is a {type(item).__name__}, expected an image")
        check_pixels(img, max_pixels)
        return img.convert("RGBA")

    background = as_image(value.get("background"))
    layers = [as_image(x) for x in value.get("layers") or []]
    layers = [x for x in layers if x is not None]
    if background is None and not layers:
        composite = as_image(value.get("composite"))
        if composite is None:
            raise InvalidInput("sketch is empty: draw or upload a sketch first")
        return composite
    size = background.size if background is not None else layers[0].size
    canvas = Image.new("RGBA", size, (255, 255, 255, 255))
    for layer in ([background] if background is not None else []) + layers:
        if layer.size != size:
            layer = layer.resize(size, Image.Resampling.BILINEAR)
        canvas = Image.alpha_composite(canvas, layer)
    return canvas


def _grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    if float(values.max() - values.min()) < 1e-6:
        return float(values.max()) + 1.0  # flat image: nothing is ink
    return float(threshold_otsu(values))


def sketch_to_lines(image: Image.Image, *, mode: str = "auto", max_pixels: int = 4096 * 4096,
                    max_side: int = 1024) -> SketchLines:
    """Clean binary lines from a sketch.

    ``lines`` (scan, photo of paper, drawing): uneven lighting is divided out with a blurred copy of
    the page, then Otsu's threshold separates ink from paper; a page that is mostly dark (chalk,
    white pen on black) is inverted. ``edges``: Canny edges, for a photo of an object rather than a
    drawing. ``auto`` uses ``lines`` unless almost half the picture would be ink.
    """
    if mode not in MODES:
        raise InvalidInput(f"sketch mode {mode!r} is not one of {', '.join(MODES)}")
    check_pixels(image, max_pixels)
    # Work at a bounded size; conditioning images are resized to the output anyway.
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    grey = _grey(image)
    inverted = False
    if float(np.median(grey)) < 0.5:  # light lines on a dark page
        grey, inverted = 1.0 - grey, True

    def line_mask(g: np.ndarray) -> np.ndarray:
        radius = max(2, min(g.shape) // 16)
        page = np.asarray(Image.fromarray((g * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius)),
                          dtype=np.float32) / 255.0
        flat = np.clip(g / np.maximum(page, 1e-3), 0.0, 1.0)  # paper ~1, ink < 1 whatever the lighting
        t = min(_otsu(flat), 0.85)  # never call faint paper texture ink
        return flat < t

    def edge_mask(g: np.ndarray) -> np.ndarray:
        from skimage.feature import canny

        return canny(g, sigma=1.5)

    used = "edges" if mode == "edges" else "lines"
    mask = line_mask(grey) if mode in ("auto", "lines") else edge_mask(grey)
    if mode == "auto" and mask.mean() > 0.45:  # a photo of a thing, not a drawing
        mask, used = edge_mask(grey), "edges"
    ink = float(mask.mean())
    if ink < MIN_INK:
        raise InvalidInput("sketch is empty: no lines found; draw darker lines or upload a clearer scan")
    lines = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")
    # Thin 1-pixel lines vanish when the control image is scaled down; thicken them a little.
    if max(lines.size) >= 256:
        lines = lines.filter(ImageFilter.MaxFilter(3))
    control = lines.convert("RGB")
    paper = Image.fromarray(255 - np.asarray(lines), "L").convert("RGB")
    return SketchLines(control=control, paper=paper, ink=ink, inverted=inverted, mode=used)


def fit_into(image: Image.Image, width: int, height: int, fill=(0, 0, 0)) -> Image.Image:
    """Scale ``image`` to fit ``width`` x ``height`` keeping its aspect, padded with ``fill``."""
    scale = min(width / image.width, height / image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    canvas = Image.new("RGB", (width, height), fill)
    canvas.paste(image.convert("RGB").resize((w, h), Image.Resampling.LANCZOS), ((width - w) // 2, (height - h) // 2))
    return canvas


__all__ = ["SketchLines", "compose_layers", "sketch_to_lines", "fit_into", "check_pixels", "MODES"]
