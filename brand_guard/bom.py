"""Bill of materials per asset: every model and runtime component that touched an output, with its
licence, and whether any of them restricts the asset (non-commercial or territory-excluded).

The BOM is plain JSON that travels inside the design's signed provenance record, so the signature
covers it; ``bom_lines`` is what ``studio verify`` prints.
"""
from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata

from .errors import ProvenanceError

KINDS = ("weights", "runtime")


@dataclass(frozen=True)
class Component:
    """One part of the bill: a model's weights (``repo`` + ``revision``) or a runtime library/binary."""

    name: str
    role: str
    licence: str
    kind: str = "runtime"
    version: str = ""
    repo: str = ""
    revision: str = ""
    commercial: bool = True
    excluded_territories: tuple[str, ...] = ()
    lineage: str = ""
    note: str = ""
    via: str = ""  # the parent design's uid when inherited from the input of this asset

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ProvenanceError(f"component kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.name or not self.licence:
            raise ProvenanceError(f"component {self.name!r} needs a name and a licence, got licence {self.licence!r}")

    @property
    def restricted(self) -> bool:
        return (not self.commercial) or bool(self.excluded_territories)

    @property
    def restriction(self) -> str:
        why = []
        if not self.commercial:
            why.append("not for commercial use")
        if self.excluded_territories:
            why.append("excluded: " + ", ".join(self.excluded_territories))
        return "; ".join(why)

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if v not in ("", (), None)}
        data["commercial"] = self.commercial
        if self.excluded_territories:
            data["excluded_territories"] = list(self.excluded_territories)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Component:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in dict(data).items() if k in known}
        values["excluded_territories"] = tuple(values.get("excluded_territories") or ())
        return cls(**values)

    def inherited(self, parent_uid: str) -> Component:
        return Component(**{**asdict(self), "via": self.via or parent_uid})


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


#: Runtime parts by key, with the licence their project publishes (re-checked November 2026).
RUNTIME: dict[str, Component] = {c.name: c for c in [
    Component("torch", "tensor runtime", "BSD-3-Clause"),
    Component("diffusers", "diffusion pipelines", "Apache-2.0"),
    Component("transformers", "model classes (encoders, depth)", "Apache-2.0"),
    Component("trimesh", "mesh container, cleanup, glTF/OBJ export", "MIT"),
    Component("xatlas", "UV unwrap", "MIT"),
    Component("fast-simplification", "decimation", "MIT"),
    Component("scipy", "texture bake (nearest fill, k-d tree)", "BSD-3-Clause"),
    Component("scikit-image", "marching cubes", "BSD-3-Clause"),
    Component("pyrender", "preview renderer", "MIT"),
    Component("mesa", "software OpenGL (EGL) for the renderer", "MIT"),
    Component("pynanoinstantmeshes", "quad remesher (Instant Meshes)", "BSD-3-Clause",
              lineage="Instant Meshes (Jakob et al.), BSD-3-Clause"),
    Component("usd-core", "USDZ export", "Tomorrow Open Source Technology License 1.0 (Apache-2.0 with modifications)"),
    Component("imageio-ffmpeg", "MP4 encoding wrapper", "BSD-2-Clause"),
    Component("studio-watermark", "crop-proof invisible watermark (brand_guard.watermark, own code)",
              "the studio's own code", note="tiled spread-spectrum mark; no third-party model"),
    Component("opencv-python-headless", "resampling and filters for the watermark", "Apache-2.0 (OpenCV); MIT (wheel)"),
    Component("pillow", "image encoding", "MIT-CMU (HPND)"),
    Component("studio-background", "background removal (alpha / plain-backdrop threshold, own code)",
              "the studio's own code", note="pipelines.background; no third-party model"),
]}

#: PyPI distribution of each runtime key whose installed version is recorded.
_DISTRIBUTIONS = {"mesa": "", "studio-background": "", "studio-watermark": "", "pynanoinstantmeshes": "pynanoinstantmeshes"}


def runtime(*keys: str) -> list[Component]:
    """The runtime components named ``keys`` with their installed versions (ffmpeg via ``ffmpeg_component``)."""
    out = []
    for key in keys:
        if key == "ffmpeg":
            out.append(ffmpeg_component())
            continue
        if key not in RUNTIME:
            raise ProvenanceError(f"runtime component {key!r} is not one of {', '.join(RUNTIME)}, ffmpeg")
        base = RUNTIME[key]
        dist = _DISTRIBUTIONS.get(key, key)
        out.append(Component(**{**asdict(base), "version": _version(dist) if dist else ""}))
    return out


def ffmpeg_licence(version_text: str) -> str:
    """The licence an ffmpeg build falls under, from its ``-version`` configuration line:
    LGPL-2.1+ by default, GPL-2.0+ with --enable-gpl, (L)GPL-3.0+ with --enable-version3,
    unredistributable with --enable-nonfree."""
    config = version_text
    gpl = "--enable-gpl" in config
    v3 = "--enable-version3" in config
    if "--enable-nonfree" in config:
        return "nonfree build (not redistributable)"
    if gpl:
        return "GPL-3.0-or-later" if v3 else "GPL-2.0-or-later"
    return "LGPL-3.0-or-later" if v3 else "LGPL-2.1-or-later"


@functools.lru_cache(maxsize=1)
def ffmpeg_component() -> Component:
    """The ffmpeg binary bundled with imageio-ffmpeg, its version and the licence its build says."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ProvenanceError("imageio-ffmpeg is not installed; pip install imageio-ffmpeg") from None
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    try:
        text = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProvenanceError(f"could not run the bundled ffmpeg {exe!r}: {exc}") from None
    match = re.search(r"ffmpeg version (\S+)", text)
    return Component("ffmpeg", "MP4 (H.264) encoder binary bundled by imageio-ffmpeg", ffmpeg_licence(text),
                     version=match.group(1) if match else imageio_ffmpeg.get_ffmpeg_version(),
                     note="separate executable; its licence covers the binary, not the videos it writes")


def bill_of_materials(components: list[Component] | list[dict]) -> dict:
    """The BOM record: components (deduplicated, order kept) and the restriction verdict."""
    seen, parts = set(), []
    for item in components:
        comp = item if isinstance(item, Component) else Component.from_dict(item)
        key = (comp.kind, comp.name, comp.repo, comp.revision, comp.role)
        if key in seen:
            continue
        seen.add(key)
        parts.append(comp)
    restricted = [c for c in parts if c.restricted]
    return {
        "components": [c.to_dict() for c in parts],
        "restricted": bool(restricted),
        "restricted_parts": [f"{c.name} ({c.role}): {c.restriction}" for c in restricted],
    }


def bom_components(bom: dict | None) -> list[Component]:
    return [Component.from_dict(c) for c in (bom or {}).get("components", [])]


def bom_restrictions(bom: dict | None) -> list[str]:
    """Which parts restrict the asset, recomputed from the components (not read from the flag)."""
    return [f"{c.name} ({c.role}): {c.restriction}" for c in bom_components(bom) if c.restricted]


def bom_lines(bom: dict | None) -> list[str]:
    """Human lines, one per component, then the verdict; ``[]`` when there is no BOM."""
    if not bom:
        return []
    lines = []
    for c in bom_components(bom):
        what = f"{c.repo}@{c.revision}" if c.kind == "weights" and c.repo else c.name
        version = f" {c.version}" if c.version and c.kind == "runtime" else ""
        via = f" (via parent {c.via})" if c.via else ""
        flag = f"  RESTRICTED: {c.restriction}" if c.restricted else ""
        lineage = f"; lineage: {c.lineage}" if c.lineage else ""
        lines.append(f"{c.kind:8} {what}{version}  [{c.role}]  {c.licence}{lineage}{via}{flag}")
    restrictions = bom_restrictions(bom)
    lines.append("restricted: " + ("yes; " + "; ".join(restrictions) if restrictions else "no"))
    return lines
