"""Style presets per product category: prompt template, negative prompt and aspect, as editable JSON.

Shipped presets live in ``assets/presets/<category>.json``; a designer's edits are saved to
``<data dir>/presets/<category>.json`` and take precedence, so the shipped files stay as released.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import InvalidRequest, NotFound
from .store.files import atomic_write

CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9\-]{0,40}$")
ASPECT_RE = re.compile(r"^(\d{1,2}):(\d{1,2})$")


@dataclass
class StylePreset:
    category: str
    label: str
    prompt_template: str
    negative_prompt: str = ""
    aspect: str = "1:1"

    def check(self) -> "StylePreset":
        if not CATEGORY_RE.match(self.category or ""):
            raise InvalidRequest(f"preset category {self.category!r}: use lower-case letters, digits and '-'")
        if self.prompt_template.count("{prompt}") != 1:
            raise InvalidRequest(f"preset {self.category!r}: the template must contain {{prompt}} exactly once, "
                                 f"got {self.prompt_template!r}")
        try:
            self.prompt_template.format(prompt="x")
        except (KeyError, IndexError, ValueError):
            raise InvalidRequest(f"preset {self.category!r}: only {{prompt}} may appear in braces in the template") from None
        m = ASPECT_RE.match(self.aspect or "")
        if not m or not int(m.group(1)) or not int(m.group(2)) or not 1 / 3 <= int(m.group(1)) / int(m.group(2)) <= 3:
            raise InvalidRequest(f"preset {self.category!r}: aspect {self.aspect!r} must look like 3:4, between 1:3 and 3:1")
        return self

    def prompt(self, text: str) -> str:
        return self.prompt_template.replace("{prompt}", text.strip())

    def negative(self, text: str = "") -> str:
        return ", ".join(x for x in (text.strip(), self.negative_prompt.strip()) if x)

    def size(self, base_width: int, base_height: int, *, min_side: int = 64, multiple: int = 8) -> tuple[int, int]:
        """Width and height with this aspect and about the area of the profile's default size."""
        a, b = (int(x) for x in self.aspect.split(":"))
        area, ratio = base_width * base_height, a / b
        w, h = math.sqrt(area * ratio), math.sqrt(area / ratio)
        if min(w, h) < min_side:  # tiny profiles: keep the short side at the minimum
            scale = min_side / min(w, h)
            w, h = w * scale, h * scale
        return max(min_side, round(w / multiple) * multiple), max(min_side, round(h / multiple) * multiple)


def _read(path: Path) -> StylePreset:
    try:
        data = json.loads(path.read_text())
        return StylePreset(**{k: data[k] for k in ("category", "label", "prompt_template")},
                           negative_prompt=data.get("negative_prompt", ""), aspect=data.get("aspect", "1:1")).check()
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"preset file {path} is not a valid preset ({exc})") from None


class PresetLibrary:
    """Shipped presets overlaid with the designer's saved edits."""

    def __init__(self, shipped_dir: Path, user_dir: Path):
        self.shipped_dir, self.user_dir = Path(shipped_dir), Path(user_dir)

    def all(self) -> dict[str, StylePreset]:
        found: dict[str, StylePreset] = {}
        for folder in (self.shipped_dir, self.user_dir):
            if folder.is_dir():
                for path in sorted(folder.glob("*.json")):
                    preset = _read(path)
                    found[preset.category] = preset
        return found

    def get(self, category: str) -> StylePreset:
        presets = self.all()
        if category not in presets:
            raise NotFound(f"style preset {category!r} does not exist; presets: {', '.join(presets) or 'none'}")
        return presets[category]

    def save(self, preset: StylePreset) -> Path:
        preset.check()
        path = self.user_dir / f"{preset.category}.json"
        atomic_write(path, (json.dumps(asdict(preset), indent=2) + "\n").encode())
        return path
