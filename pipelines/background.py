"""Input preparation for image-to-3D: cut the object out of its background, centre it, pad it square.

The mask comes from the image's own alpha channel, else a threshold against a plain studio background
(uniform border); otherwise the whole picture is kept. There is deliberately no segmentation model: the
candidates seen so far inherit non-commercial licences (e.g. SegFormer fine-tunes of NVIDIA's MiT), so a
photo on a busy background should be cut out (PNG with alpha) or shot on a plain backdrop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .errors import InvalidInput

#: Below this many pixels a side there is nothing to reconstruct.
MIN_SIDE = 8
#: A border this uniform (max per-channel std, 0-255) counts as a plain studio background.
PLAIN_BORDER_STD = 12.0


@dataclass
class PreparedImage:
    """An RGBA square image (object centred, background transparent) and how its mask was made."""

    image: Image.Image
    mask_source: str  # alpha | threshold | none
    coverage: float  # share of the square covered by the object

    @property
    def mask(self) -> np.ndarray:
        return np.asarray(self.image.getchannel("A")) > 127


def _border(pixels: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate([pixels[:width].reshape(-1, 3), pixels[-width:].reshape(-1, 3),
                           pixels[:, :width].reshape(-1, 3), pixels[:, -width:].reshape(-1, 3)])


def threshold_mask(image: Image.Image, *, tolerance: float = 28.0) -> np.ndarray | None:
    """Mask of pixels differing from a plain border colour, or None when the border is not plain."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    width = max(1, min(pixels.shape[:2]) // 32)
    border = _border(pixels, width)
    if float(border.std(axis=0).max()) > PLAIN_BORDER_STD:
        return None
    colour = np.median(border, axis=0)
    distance = np.abs(pixels - colour).max(axis=-1)
    mask = distance > tolerance
    # Close pinholes and drop speckle so the outline is one clean shape.
    img = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(3))
    return np.asarray(img) > 127


def remove_background(image: Image.Image) -> tuple[np.ndarray, str]:
    """(mask, source): the object's pixels and which method found them (alpha, threshold or none)."""
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"))
        if alpha.max() == 0:
            raise InvalidInput("image is fully transparent: there is no object to make 3D from")
        if alpha.min() < 255:
            return alpha > 127, "alpha"
    mask = threshold_mask(image)
    if mask is not None and 0.005 < mask.mean() < 0.98:
        return mask, "threshold"
    return np.ones(image.size[::-1], dtype=bool), "none"


def prepare_image(
    image: Image.Image,
    *,
    size: int | None = None,
    margin: float = 0.1,
) -> PreparedImage:
    """Cut out, centre on the object's bounding box and pad square with ``margin`` on each side."""
    # 1. Check inputs
    w, h = image.size
    if min(w, h) < MIN_SIDE:
        raise InvalidInput(f"image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed to make 3D")
    if not 0.0 <= margin < 0.5:
        raise InvalidInput(f"margin must be in [0, 0.5), got {margin!r}")
    # 2. Mask
    mask, source = remove_background(image)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise InvalidInput("no object was found in the image (the mask is empty)")
    # 3. Crop to the object, then pad square around its centre
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray((mask * 255).astype(np.uint8)))
    crop = rgba.crop((int(x0), int(y0), int(x1), int(y1)))
    side = int(round(max(crop.size) / (1.0 - 2 * margin)))
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
    if size:
        square = square.resize((size, size), Image.LANCZOS)
    coverage = float((np.asarray(square.getchannel("A")) > 127).mean())
    return PreparedImage(square, source, coverage)


def on_background(image: Image.Image, colour=(255, 255, 255)) -> Image.Image:
    """Composite an RGBA image on a flat colour (models were trained on white or grey)."""
    base = Image.new("RGBA", image.size, tuple(colour) + (255,))
    return Image.alpha_composite(base, image.convert("RGBA")).convert("RGB")
