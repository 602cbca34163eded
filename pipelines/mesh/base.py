"""The interface every image-to-3D backend shares."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

from PIL import Image

from ..errors import InvalidInput


@dataclass
class MeshOptions:
    """Knobs common to all backends. ``size_m`` is the largest extent of the result in metres."""

    resolution: int = 128
    size_m: float = 0.30
    relief: float = 0.25
    thickness: float = 0.04
    texture_size: int = 1024
    face_budget: int = 20000
    material: str = "leather"
    seed: int = 0
    grid: int = 64  # marching-cubes grid of the field backends (Shap-E, LRM)


@dataclass
class MeshResult:
    """A reconstructed mesh and what made it (recorded with the design)."""

    mesh: object  # trimesh.Trimesh; kept untyped so importing this module does not import trimesh
    backend: str
    model: str
    revision: str
    params: dict = field(default_factory=dict)


def check_options(options: MeshOptions) -> MeshOptions:
    """Validate ``options``; raise ``InvalidInput`` naming the bad field."""
    checks = {
        "resolution": (8, 1024),
        "size_m": (0.001, 10.0),
        "relief": (0.0, 2.0),
        "thickness": (0.0, 1.0),
        "texture_size": (16, 8192),
        "face_budget": (4, 5_000_000),
        "grid": (8, 512),
    }
    for name, (lo, hi) in checks.items():
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidInput(f"mesh option {name} must be a finite number, got {value!r}")
        if not lo <= value <= hi:
            raise InvalidInput(f"mesh option {name} must be between {lo} and {hi}, got {value!r}")
    from .post import MATERIALS

    if options.material not in MATERIALS:
        raise InvalidInput(f"mesh option material must be one of {', '.join(MATERIALS)}, got {options.material!r}")
    return options


#: Default largest extent per product category, in centimetres (the designer can override it).
CATEGORY_SIZE_CM: dict[str, float] = {
    "handbag": 30.0, "tote": 40.0, "clutch": 24.0, "backpack": 42.0, "wallet": 11.0,
    "shoe": 28.0, "boot": 35.0, "belt": 110.0, "hat": 32.0, "scarf": 90.0, "sunglasses": 14.0,
    "jewellery": 5.0, "watch": 4.5, "garment": 70.0,
}


class MeshBackend(Protocol):
    """What the studio needs from an image-to-3D backend."""

    name: str
    model_name: str
    revision: str

    def reconstruct(
        self, image: Image.Image, options: MeshOptions, on_progress: Callable[[str, float], None] | None = None
    ) -> MeshResult:
        ...
