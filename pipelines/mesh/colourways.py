"""Colourways: recolour a textured mesh's atlas from a colour card, keeping its shading and stitching.

The recolour works in CIELAB: each texel keeps its lightness detail (L minus the atlas's mean L,
so grain, seams and stitches survive) around the target's lightness, and takes the target's chroma.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InvalidInput
from .post import MATERIALS

COLOURS_DIR = Path(__file__).resolve().parents[2] / "assets" / "colours"
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class Colour:
    name: str
    hex: str
    material: str | None = None

    @property
    def rgb(self) -> tuple[int, int, int]:
        h = _HEX.match(self.hex)
        if not h:
            raise InvalidInput(f"colour {self.name!r}: {self.hex!r} is not a #RRGGBB hex colour")
        v = h.group(1)
        return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def parse_colour(spec: str) -> Colour:
    """``#9A4E1C`` or ``Cognac=#9A4E1C`` or ``Cognac=#9A4E1C:leather``."""
    name, _, rest = spec.partition("=") if "=" in spec else (spec, "", spec)
    hexpart, _, material = rest.partition(":")
    colour = Colour(name.strip() or hexpart, hexpart.strip(), material.strip() or None)
    colour.rgb  # validates
    if colour.material and colour.material not in MATERIALS:
        raise InvalidInput(f"colour {spec!r}: material must be one of {', '.join(MATERIALS)}")
    return colour


def load_palettes(directory: Path = COLOURS_DIR) -> dict[str, list[Colour]]:
    """Every colour card in ``directory`` (JSON: name, colours[{name, hex, material}])."""
    out = {}
    for path in sorted(Path(directory).glob("*.json")):
        data = json.loads(path.read_text())
        out[data.get("name", path.stem)] = [Colour(c["name"], c["hex"], c.get("material")) for c in data["colours"]]
    return out


def recolour_texture(texture: Image.Image, colour: Colour, *, detail: float = 1.0) -> Image.Image:
    """Luminance-preserving recolour: the target's a*, b* and mean L; the texture's L detail."""
    from skimage import color

    rgb = np.asarray(texture.convert("RGB"), dtype=np.float64) / 255.0
    lab = color.rgb2lab(rgb)
    target = color.rgb2lab(np.asarray(colour.rgb, dtype=np.float64).reshape(1, 1, 3) / 255.0)[0, 0]
    lightness = lab[..., 0]
    out = np.empty_like(lab)
    out[..., 0] = np.clip(target[0] + detail * (lightness - lightness.mean()), 0, 100)
    out[..., 1] = target[1]
    out[..., 2] = target[2]
    with warnings.catch_warnings():  # out-of-gamut texels are clipped on purpose
        warnings.simplefilter("ignore", UserWarning)
        back = np.clip(color.lab2rgb(out), 0, 1)
    return Image.fromarray((back * 255 + 0.5).astype(np.uint8), "RGB")


def colourway(mesh, colour: Colour):
    """A copy of ``mesh`` with its base-colour atlas recoloured (and the colour's material preset)."""
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    material = getattr(mesh.visual, "material", None)
    texture = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    if texture is None or getattr(mesh.visual, "uv", None) is None:
        raise InvalidInput("colourways need a textured, UV-mapped mesh; this mesh has no texture atlas")
    preset = MATERIALS.get(colour.material or "", None)
    new_material = PBRMaterial(
        name=f"{colour.name}",
        baseColorTexture=recolour_texture(texture, colour),
        roughnessFactor=preset.roughness if preset else getattr(material, "roughnessFactor", 0.6),
        metallicFactor=preset.metallic if preset else getattr(material, "metallicFactor", 0.0),
        doubleSided=preset.double_sided if preset else bool(getattr(material, "doubleSided", False)),
    )
    out = mesh.copy()
    out.visual = TextureVisuals(uv=mesh.visual.uv.copy(), material=new_material)
    return out
