"""Use cases of 3D: image or prompt -> textured mesh design (with previews), exports, colourways."""
from __future__ import annotations

from .. import catalog
from ..access import AccessPolicy, Actor
from ..errors import InvalidRequest, ModelMissing
from ..settings import Settings
from ..store import Design, Store
from .base import ProgressFn, translate_errors
from .designs import DesignWriter, NewDesign
from .models import ModelCache, hunyuan_message

EXPORT_FORMATS = ("glb", "obj", "zip")


class MeshService:
    """Given settings, the store, the model cache, the design writer and the access policy."""

    def __init__(self, settings: Settings, store: Store, models: ModelCache, designs: DesignWriter,
                 access: AccessPolicy):
        self.settings = settings
        self.store = store
        self.models = models
        self.designs = designs
        self.access = access

    @property
    def mesh_defaults(self) -> dict:
        return self.models.mesh_defaults

    def mesh_backends(self) -> list[tuple[catalog.MeshBackendInfo, catalog.ModelEntry]]:
        """Every 3D backend with the catalogue entry it would use in this profile."""
        return [(info, catalog.entry_for(self.settings.profile, info.role)) for info in catalog.MESH_BACKENDS.values()]

    def backend(self, name: str, *, text: bool = False):
        info = catalog.MESH_BACKENDS.get(name)
        if info is None:
            raise InvalidRequest(f"3D backend {name!r} is not one of {', '.join(catalog.MESH_BACKENDS)}")
        if info.role == "hunyuan3d":
            raise ModelMissing(hunyuan_message(catalog.entry_for(self.settings.profile, "hunyuan3d")))
        if text and not info.text_role:
            raise InvalidRequest(f"3D backend {name!r} makes 3D from images only; text -> 3D needs 'shap-e'")
        backend = self.models.get(info.text_role if text else info.role)
        if not text:
            backend.segmenter = self._segmenter()
        return backend

    def _segmenter(self):
        try:
            return self.models.get("segmentation")
        except ModelMissing:
            return None  # the alpha channel and the plain-backdrop threshold still work

    def _mesh_options(self, *, size_cm, category, resolution, face_budget, texture_size, material, seed):
        from pipelines.mesh import MeshOptions, check_options
        from pipelines.mesh.base import CATEGORY_SIZE_CM

        d = self.mesh_defaults
        if size_cm is None:
            if category is None:
                size_cm = 30.0
            elif category not in CATEGORY_SIZE_CM:
                raise InvalidRequest(f"category {category!r} is not one of {', '.join(CATEGORY_SIZE_CM)}")
            else:
                size_cm = CATEGORY_SIZE_CM[category]
        for label, value in (("size_cm", size_cm), ("face_budget", face_budget), ("texture_size", texture_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InvalidRequest(f"{label} must be a number, got {value!r}")
        if face_budget is not None and face_budget < 4:
            raise InvalidRequest(f"face budget must be at least 4 faces, got {face_budget}")
        options = MeshOptions(
            resolution=resolution or self.models.defaults.get("mesh_resolution", 128), size_m=float(size_cm) / 100.0,
            face_budget=int(face_budget or d["face_budget"]), texture_size=int(texture_size or d["texture_size"]),
            material=material or "leather", seed=int(seed or 0), grid=int(d["grid"]),
        )
        with translate_errors():
            check_options(options)
        return options, float(size_cm)

    # ------------------------------------------------------------------ make
    def make_mesh(
        self,
        design_id: int,
        *,
        backend: str | None = None,
        resolution: int | None = None,
        size_cm: float | None = 30.0,
        category: str | None = None,
        face_budget: int | None = None,
        texture_size: int | None = None,
        material: str | None = None,
        seed: int | None = None,
        previews: bool = True,
        actor: Actor | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Design:
        """Image design -> textured mesh design (GLB) whose parent is the image; previews saved with it."""
        from pipelines.images import open_image

        actor = self.access.check(actor, "create")  # before any model work
        parent = self.store.design(design_id)
        if parent.kind != "image":
            raise InvalidRequest(f"design {design_id} is a {parent.kind}; choose an image design to make 3D from")
        name = backend or self.mesh_defaults["backend"]
        options, size_cm = self._mesh_options(size_cm=size_cm, category=category, resolution=resolution,
                                              face_budget=face_budget, texture_size=texture_size,
                                              material=material, seed=seed)
        with translate_errors():
            image = open_image(self.store.file_path(parent), max_pixels=self.settings.max_image_pixels)
            model = self.backend(name)
            result = model.reconstruct(image, options, on_progress=_reporter(on_progress))
        return self._save_mesh(result, options, size_cm=size_cm, project_id=parent.project_id, parent=parent,
                               previews=previews, actor=actor, on_progress=on_progress)

    def make_mesh_from_prompt(
        self,
        prompt: str,
        *,
        backend: str = "shap-e",
        project: str | None = None,
        size_cm: float | None = 30.0,
        category: str | None = None,
        face_budget: int | None = None,
        texture_size: int | None = None,
        material: str | None = None,
        seed: int | None = None,
        previews: bool = True,
        actor: Actor | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Design:
        """Text -> textured mesh design (no parent)."""
        actor = self.access.check(actor, "create")
        options, size_cm = self._mesh_options(size_cm=size_cm, category=category, resolution=None,
                                              face_budget=face_budget, texture_size=texture_size,
                                              material=material, seed=seed)
        with translate_errors():
            model = self.backend(backend, text=True)
            result = model.generate(prompt, options, on_progress=_reporter(on_progress))
        project_id = self.store.project(project).id
        return self._save_mesh(result, options, size_cm=size_cm, project_id=project_id, parent=None, prompt=prompt,
                               previews=previews, actor=actor, on_progress=on_progress)

    def _save_mesh(self, result, options, *, size_cm, project_id, parent, previews, actor, on_progress,
                   prompt: str = "") -> Design:
        import time

        from pipelines.mesh import export_glb

        timings = result.params.setdefault("timings", {})
        start = time.perf_counter()
        with translate_errors():
            glb = export_glb(result.mesh)
        timings["export"] = time.perf_counter() - start
        if on_progress:
            on_progress(0.85, "rendering previews")
        start = time.perf_counter()
        shots = self.render_previews(result.mesh) if previews else {}
        timings["render"] = time.perf_counter() - start
        params = dict(result.params, backend=result.backend, faces=int(len(result.mesh.faces)),
                      vertices=int(len(result.mesh.vertices)), size_cm=size_cm, face_budget=options.face_budget,
                      texture_size=options.texture_size, material=options.material, previews=shots)
        return self._store_mesh_designs([dict(
            glb=glb, project_id=project_id, parent=parent, prompt=parent.prompt if parent else prompt,
            negative_prompt=parent.negative_prompt if parent else "", seed=parent.seed if parent else options.seed,
            model=result.model, revision=result.revision, params=params,
        )], actor)[0]

    def _store_mesh_designs(self, items: list[dict], actor: Actor | None) -> list[Design]:
        """Each GLB becomes a mesh design through the design writer (stamped, signed, in the ledger)."""
        return self.designs.create([NewDesign(
            kind="mesh", record_kind="mesh", content=item["glb"], project_id=item["project_id"],
            params=item["params"], parent=item["parent"], prompt=item["prompt"],
            negative_prompt=item["negative_prompt"], seed=item["seed"], model=item["model"],
            revision=item["revision"],
        ) for item in items], actor)

    # ------------------------------------------------------------------ previews
    def render_previews(self, mesh, *, frames: int | None = None) -> dict:
        """Thumbnail PNG + turntable GIF in the file store; ``{"error": why}`` when no GL is available."""
        from pipelines import render

        d = self.mesh_defaults
        ok, why = render.gl_available()
        if not ok:
            return {"error": why}
        frames = int(frames or d["turntable_frames"])
        with translate_errors():
            thumb = render.png_bytes(render.render_thumbnail(mesh, d["preview_size"]))
            gif = render.gif_bytes(render.render_turntable(mesh, frames, d["preview_size"]))
        thumb_rel, _ = self.store.files.put(thumb, ".png")
        gif_rel, _ = self.store.files.put(gif, ".gif")
        return {"thumbnail": thumb_rel, "turntable": gif_rel, "frames": frames}

    def file_path(self, design_id: int):
        return self.store.file_path(self.store.design(design_id))

    def download_copy(self, design: Design):
        """A copy of the design's file under a readable name (``design-12.glb``) for download."""
        import shutil

        source = self.store.file_path(design)
        target = self.settings.downloads_dir / str(design.id) / f"design-{design.id}{source.suffix}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return target

    def preview_path(self, design: Design, which: str = "thumbnail"):
        rel = (design.params or {}).get("previews", {}).get(which)
        return self.store.files.root / rel if rel else None

    # ------------------------------------------------------------------ export
    def load_mesh(self, design_id: int):
        from pipelines.mesh import load_mesh_bytes

        design = self.store.design(design_id)
        if design.kind != "mesh":
            raise InvalidRequest(f"design {design_id} is a {design.kind}; choose a mesh design")
        return design, load_mesh_bytes(self.store.file_path(design).read_bytes())

    def provenance(self, design: Design) -> dict:
        """The design record and its lineage, as stored (the brand guard adds a signature)."""
        lineage = self.store.lineage(design.id)
        return {
            "design": design.id, "kind": design.kind, "project": design.project_id, "parent": design.parent_id,
            "prompt": design.prompt, "seed": design.seed, "model": design.model, "revision": design.revision,
            "params": design.params, "sha256": design.sha256, "created_by": design.created_by,
            "created_at": design.created_at.isoformat() if design.created_at else None,
            "lineage": [{"design": d.id, "kind": d.kind, "model": d.model, "sha256": d.sha256} for d in lineage],
        }

    def export_mesh(self, design_id: int, fmt: str = "glb") -> dict[str, bytes]:
        """``{filename: bytes}`` of a mesh design as GLB, OBJ+MTL+PNG, or a ZIP of both plus provenance."""
        from pipelines.mesh.export import export_obj, export_zip

        if fmt not in EXPORT_FORMATS:
            raise InvalidRequest(f"format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
        design, mesh = self.load_mesh(design_id)
        name = f"design-{design.id}"
        if fmt == "glb":
            return {f"{name}.glb": self.store.file_path(design).read_bytes()}
        with translate_errors():
            if fmt == "obj":
                return export_obj(mesh, name)
            return {f"{name}.zip": export_zip(mesh, self.provenance(design), name, sign=self.designs.sign_bytes)}

    # ------------------------------------------------------------------ colourways
    def colour_cards(self) -> dict:
        from pipelines.mesh.colourways import load_palettes

        return load_palettes()

    def make_colourways(
        self,
        design_id: int,
        *,
        palette: str | None = None,
        colours: list[str] | None = None,
        n: int | None = None,
        previews: bool = True,
        actor: Actor | None = None,
    ) -> list[Design]:
        """N recoloured variants of a textured mesh, each a mesh design whose parent is that mesh."""
        from pipelines.mesh import export_glb
        from pipelines.mesh.colourways import colourway, parse_colour

        actor = self.access.check(actor, "create")

        cards = self.colour_cards()
        with translate_errors():
            if colours:
                chosen = [parse_colour(c) for c in colours]
            else:
                name = palette or next(iter(cards))
                if name not in cards:
                    raise InvalidRequest(f"colour card {name!r} is not one of {', '.join(cards)}")
                chosen = list(cards[name])
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InvalidRequest(f"number of colourways must be a positive integer, got {n!r}")
            chosen = chosen[:n]
        source, mesh = self.load_mesh(design_id)
        items = []
        with translate_errors():
            for colour in chosen:
                variant = colourway(mesh, colour)
                shots = self.render_previews(variant, frames=2) if previews else {}
                params = dict(source.params or {}, colourway=colour.name, hex=colour.hex, palette=palette,
                              material=colour.material or (source.params or {}).get("material"), previews=shots)
                for key in ("timings", "uid", "watermark"):
                    params.pop(key, None)
                items.append(dict(glb=export_glb(variant), project_id=source.project_id, parent=source,
                                  prompt=source.prompt, negative_prompt=source.negative_prompt, seed=source.seed,
                                  model=source.model, revision=source.revision, params=params))
        return self._store_mesh_designs(items, actor)


def _reporter(on_progress):
    if on_progress is None:
        return None

    def report(stage: str, fraction: float) -> None:
        on_progress(fraction * 0.8, stage)

    return report

