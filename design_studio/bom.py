"""Which catalogue models and runtime parts made a design, as a bill of materials (``brand_guard.bom``).

Read from what the design records (its model and revision, the sketch model, adapters, the 3D
backend's mask source, the multi-view texturing models, previews, topology) and from the catalogue's licences; a mesh inherits the
components of the image it was made from, so a restricted concept model marks the mesh too.
"""
from __future__ import annotations

from pathlib import Path

from brand_guard.bom import Component, bill_of_materials, bom_components, runtime

from . import catalog

CONCEPT_RUNTIME = ("torch", "diffusers", "transformers", "pillow", "studio-watermark", "opencv-python-headless")
MESH_RUNTIME = ("trimesh", "fast-simplification", "xatlas", "scipy")
RENDER_RUNTIME = ("pyrender", "mesa")
#: The geometry-map rasteriser of multi-view texturing (positions, normals, depth per view).
RASTERISER = Component("studio-rasteriser", "geometry maps for multi-view texturing (own code)",
                       "the studio's own code", note="pipelines.render; upstream's nvdiffrast is not used")
#: Runtime parts a 3D backend adds to ``MESH_RUNTIME`` (its network code is ours, on torch/diffusers/transformers).
BACKEND_RUNTIME = {
    "triposg": ("torch", "diffusers", "transformers", "scikit-image"),
    "triposg-scribble": ("torch", "diffusers", "transformers", "scikit-image"),
}


def _entry(repo_id: str) -> catalog.ModelEntry | None:
    return next((e for e in catalog.CATALOGUE.values() if e.repo_id == repo_id), None)


def _pinned(repo_id: str, revision: str, models_dir: Path | None) -> str:
    """The commit ``studio models pull`` resolved a branch name to (from the lock file), else ``revision``."""
    if models_dir is None:
        return revision
    from .models_lock import read_lock

    try:
        locked = read_lock(Path(models_dir)).get("models", {}).get(repo_id) or {}
    except Exception:  # an unreadable lock file is reported by `studio models verify`, not here
        return revision
    if locked.get("revision") and locked.get("requested_revision", revision) == revision:
        return str(locked["revision"])
    return revision


def weights(repo_id: str, revision: str, role: str, models_dir: Path | None = None) -> Component:
    """A model's weights with the catalogue's licence and the pinned revision; a model outside the
    catalogue is marked unknown (and restricted: nothing says a house may use it)."""
    revision = _pinned(repo_id, revision, models_dir)
    entry = _entry(repo_id)
    if entry is None:
        return Component(repo_id, role, "unknown (not in the catalogue)", kind="weights", repo=repo_id,
                         revision=revision or "", commercial=False)
    return Component(entry.repo_id, role or entry.role, entry.licence, kind="weights", repo=entry.repo_id,
                     revision=revision or entry.revision, commercial=entry.commercial,
                     excluded_territories=tuple(entry.excluded_territories), lineage=_lineage(entry),
                     note="random-weight twin made here" if entry.tiny else "")


def _lineage(entry: catalog.ModelEntry) -> str:
    return entry.lineage_line if entry.lineage else ""


def shipped_parts(repo_id: str) -> list[Component]:
    """The components shipped inside a catalogued model's weights (its lineage's ``part`` entries: an image
    or text encoder), each under its own licence; none for a model outside the catalogue or a twin."""
    entry = _entry(repo_id)
    if entry is None:
        return []
    return [Component(u.name, f"{u.what or 'component'} inside {entry.repo_id}", u.licence, kind="weights",
                      repo=u.name if "/" in u.name else "", commercial=u.commercial,
                      note=f"ships in {entry.repo_id}'s weights")
            for u in entry.lineage if u.how == "part"]


def concept_components(model: str, revision: str, params: dict, models_dir: Path | None = None) -> list[Component]:
    """Text/sketch -> image: the base model, the sketch ControlNet, house adapters, the runtime."""
    parts = [weights(model, revision, "concept (text/sketch -> image)", models_dir)]
    if params.get("sketch_model"):
        parts.append(weights(params["sketch_model"], params.get("sketch_revision", ""), "sketch conditioning",
                             models_dir))
    base = _entry(model)
    for adapter in params.get("adapters") or []:
        name = adapter.get("name") if isinstance(adapter, dict) else str(adapter)
        # A LoRA trained here on vault images inherits its base model's licence.
        parts.append(Component(f"adapter:{name}", "house LoRA adapter (vault)", base.licence if base else "unknown",
                               kind="weights", revision=str(adapter.get("sha256", ""))[:16] if isinstance(adapter, dict) else "",
                               commercial=base.commercial if base else False,
                               excluded_territories=tuple(base.excluded_territories) if base else (),
                               lineage=f"LoRA on {model}"))
    return parts + runtime(*CONCEPT_RUNTIME)


def upload_bom() -> dict:
    """An uploaded picture: nothing made it here but the re-encode and the watermark."""
    return bill_of_materials(runtime("pillow", "studio-watermark", "opencv-python-headless"))


def mesh_components(model: str, revision: str, params: dict, *, profile: str, models_dir: Path | None = None,
                    parent_bom: dict | None = None, parent_uid: str = "") -> list[Component]:
    """Image/text -> mesh: the backend's weights, background removal, post-processing, previews,
    remesher, plus the parent image's components (marked ``via`` the parent)."""
    backend = catalog.MESH_BACKENDS.get(str(params.get("backend", "")))
    parts = [weights(model, revision, f"3D backend {backend.name}" if backend else "3D backend", models_dir),
             *shipped_parts(model)]
    if params.get("mask") in ("alpha", "threshold", "none"):
        parts += runtime("studio-background")
    parts += runtime(*MESH_RUNTIME, *BACKEND_RUNTIME.get(backend.name if backend else "", ()))
    previews = params.get("previews") or {}
    if previews.get("thumbnail") or previews.get("turntable"):
        parts += runtime(*RENDER_RUNTIME)
    if previews.get("turntable_mp4"):
        parts += runtime("imageio-ffmpeg", "ffmpeg")
    texture = params.get("texture") or {}
    if texture.get("mode") == "multiview":
        # MV-Adapter paints six views on its base model from geometry maps our own rasteriser draws.
        parts.append(weights(texture.get("model", ""), texture.get("revision", ""),
                             "multi-view texturing (MV-Adapter)", models_dir))
        parts.append(weights(texture.get("base_model", ""), texture.get("base_revision", ""),
                             "multi-view base model", models_dir))
        parts += [*shipped_parts(texture.get("base_model", "")), RASTERISER, *runtime("torch", "diffusers")]
    if (params.get("topology") or {}).get("kind") == "quads":
        parts += runtime("pynanoinstantmeshes")
    parts += [c.inherited(parent_uid) for c in bom_components(parent_bom)]
    return parts


def concept_bom(model: str, revision: str, params: dict, models_dir: Path | None = None) -> dict:
    return bill_of_materials(concept_components(model, revision, params, models_dir))


def mesh_bom(model: str, revision: str, params: dict, *, profile: str, models_dir: Path | None = None,
             parent=None) -> dict:
    parent_params = (parent.params or {}) if parent is not None else {}
    return bill_of_materials(mesh_components(
        model, revision, params, profile=profile, models_dir=models_dir, parent_bom=parent_params.get("bom"),
        parent_uid=(parent.uid or str(parent.id)) if parent is not None else ""))


def export_bom(bom: dict | None, fmt: str) -> dict:
    """The design's BOM plus what a given export adds (usd-core for USDZ)."""
    extra = runtime("usd-core") if fmt == "usdz" else []
    return bill_of_materials(bom_components(bom) + extra)
