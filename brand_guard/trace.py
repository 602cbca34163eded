"""Read the studio's mark from a file that may have left the studio: an image in any common format
(a screenshot, a crop, a re-encoded copy), or the textures inside a GLB or a USDZ."""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from . import watermark
from .errors import ProvenanceError
from .provenance import _GLB_MAGIC, glb_images

#: Image formats a leaked copy may come in.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
MAX_PIXELS = 80_000_000
MAX_FILE_BYTES = 512 * 1024 * 1024
TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class TraceInputError(ProvenanceError):
    """The file cannot be read as an image, a GLB or a USDZ."""


@dataclass(frozen=True)
class Finding:
    """The mark read from one picture in a file: where, its payload (or None) and the evidence."""

    source: str
    payload: str | None
    sync_z: float
    scale: tuple[float, float]


def _open_image(data: bytes, label: str) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise TraceInputError(
                        f"{label}: {image.width}x{image.height} pixels is more than {MAX_PIXELS:,} (a decompression bomb?)"
                    )
                image.load()
                return image.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise TraceInputError(f"{label}: refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise TraceInputError(f"{label}: not a readable image ({exc})") from None


def _finding(source: str, image: Image.Image) -> Finding:
    found = watermark.read(image)
    return Finding(source, found.payload, found.sync_z, found.scale)


def find_marks(path: Path | str) -> list[Finding]:
    """One finding per picture in the file: the image itself, or each texture of a GLB / USDZ.

    Raises TraceInputError when the file is missing, too large or of no readable kind."""
    path = Path(path)
    if not path.is_file():
        raise TraceInputError(f"{str(path)!r} is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise TraceInputError(f"{path.name}: {path.stat().st_size:,} bytes is more than {MAX_FILE_BYTES:,}")
    data = path.read_bytes()
    if data[:4] == _GLB_MAGIC:
        return [_finding(f"texture {index}", _open_image(blob, f"{path.name} texture {index}"))
                for index, blob in glb_images(data)]
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as package:
                names = [n for n in package.namelist() if n.lower().endswith(TEXTURE_SUFFIXES)]
                return [_finding(name, _open_image(package.read(name), f"{path.name}:{name}")) for name in names]
        except zipfile.BadZipFile as exc:
            raise TraceInputError(f"{path.name}: not a readable USDZ/ZIP ({exc})") from None
    return [_finding("image", _open_image(data, path.name))]


def first_payload(findings: list[Finding]) -> Finding | None:
    """The first finding that carries a payload, else None."""
    return next((f for f in findings if f.payload), None)
