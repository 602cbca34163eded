"""Safe image input: accepted formats only, decompression bombs and truncated files refused."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageFile

from .errors import InvalidImage

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP")
DEFAULT_MAX_PIXELS = 4096 * 4096

# A truncated file is an error, never a silently grey-padded image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def open_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Open, fully decode and return an RGB or RGBA image; raise ``InvalidImage`` otherwise."""
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded image")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImage(f"image {label!r}: no such file")
        data = path.read_bytes()
    else:
        data = source
    if not data:
        raise InvalidImage(f"image {label!r}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make every bomb an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise InvalidImage(
                        f"image {label!r}: {w}x{h} = {w * h} pixels is over the limit of {max_pixels} pixels"
                    )
                img.load()
                mode = "RGBA" if ("A" in img.getbands() or img.mode == "P" and "transparency" in img.info) else "RGB"
                return img.convert(mode)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"image {label!r}: too many pixels ({exc})") from None
    except Image.UnidentifiedImageError:
        raise InvalidImage(
            f"image {label!r}: not a readable image; accepted formats are {', '.join(ACCEPTED_FORMATS)}"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"image {label!r}: corrupt or truncated ({exc})") from None


def flatten_on_white(image: Image.Image) -> Image.Image:
    """Composite an RGBA image on a white studio background (RGB images pass through)."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image).convert("RGB")
