"""Use cases of 3D: image or prompt -> textured mesh design (with previews), exports, colourways."""
from __future__ import annotations

from .. import catalog
from ..errors import InvalidRequest, ModelMissing
from ..store import Design
from .base import ProgressFn, translate_errors

#: Catalogue roles whose models this mixin loads.
MESH_ROLES = ("segmentation", "lrm", "shap-e", "shap-e-text", "hunyuan3d", "multiview")
EXPORT_FORMATS = ("glb", "obj", "zip")


class MeshesMixin:
    """Mixed into ``Studio``; uses ``self.settings``, ``self.store``, ``self._model``."""

    #: Hook for the brand guard: a callable(bytes) -> str signing the provenance JSON in ZIP exports.
    sign_provenance = None

    # ------------------------------------------------------------------ models
    def _load_mesh_model(self, role: str, entry, path):
        if role == "segmentation":
            from pipelines.background import SegmentationModel

            return SegmentationModel.load(path, model_name=entry.repo_id, revision=entry.revision, device=self.device)
        if role == "lrm":
            from pipelines.mesh.lrm import LRMBackend

            return LRMBackend.load(path, model_name=entry.repo_id, revision=entry.revision, device=self.device)
        if role in ("shap-e", "shap-e-text"):
            from pipelines.mesh.shap_e import ShapEBackend

            return ShapEBackend.load(path, model_name=entry.repo_id, revision=entry.revision, device=self.device,
                                     steps=self.mesh_defaults["shap_e_steps"])
        if role == "multiview":
            from pipelines.devices import resolve_dtype
            from pipelines.texture.mv_adapter import MultiViewGenerator

            base, base_path = catalog.multiview_base(self.settings.profile, self.settings.resolved_models_dir)
            self._check_model_path(base_path)
            return MultiViewGenerator.load(base_path, path, model_name=entry.repo_id, revision=entry.revision,
                                           base_name=base.repo_id, base_revision=base.revision, device=self.device,
                                           dtype=resolve_dtype(self.settings.dtype, self.device))
        raise ModelMissing(_hunyuan_message(entry))

    @property
    def mesh_defaults(self) -> dict:
        return dict(catalog.MESH_DEFAULTS[self.settings.profile])

    def mesh_backends(self) -> list[tuple[catalog.MeshBackendInfo, catalog.ModelEntry]]:
        """Every 3D backend with the catalogue entry it would use in this profile."""
        return [(info, catalog.entry_for(self.settings.profile, info.role)) for info in catalog.MESH_BACKENDS.values()]

    def _mesh_backend(self, name: str, *, text: bool = False):
        info = catalog.MESH_BACKENDS.get(name)
        if info is None:
            raise InvalidRequest(f"3D backend {name!r} is not one of {', '.join(catalog.MESH_BACKENDS)}")
        if info.role == "hunyuan3d":
            raise ModelMissing(_hunyuan_message(catalog.entry_for(self.settings.profile, "hunyuan3d")))
        if text and not info.text_role:
            raise InvalidRequest(f"3D backend {name!r} makes 3D from images only; text -> 3D needs 'shap-e'")
        backend = self._model(info.text_role if text else info.role)
        if not text:
            backend.segmenter = self._segmenter()
        return backend

    def _segmenter(self):
        try:
            return self._model("segmentation")
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
            resolution=resolution or self.defaults.get("mesh_resolution", 128), size_m=float(size_cm) / 100.0,
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
        texture: str | None = None,
        previews: bool = True,
        actor: str = "",
        on_progress: ProgressFn | None = None,
    ) -> Design:
        """Image design -> textured mesh design (GLB) whose parent is the image; previews saved with it.

        ``texture`` "project" keeps the backend's texture (the concept image projected); "multiview"
        repaints it from six MV-Adapter views of the mesh conditioned on the concept image.
        """
        from pipelines.images import open_image

        parent = self.store.design(design_id)
        if parent.kind != "image":
            raise InvalidRequest(f"design {design_id} is a {parent.kind}; choose an image design to make 3D from")
        name = backend or self.mesh_defaults["backend"]
        texture = texture or self.mesh_defaults["texture"]
        if texture not in catalog.TEXTURE_MODES:
            raise InvalidRequest(f"texture {texture!r} is not one of {', '.join(catalog.TEXTURE_MODES)}")
        options, size_cm = self._mesh_options(size_cm=size_cm, category=category, resolution=resolution,
                                              face_budget=face_budget, texture_size=texture_size,
                                              material=material, seed=seed)
        with translate_errors():
            image = open_image(self.store.file_path(parent), max_pixels=self.settings.max_image_pixels)
            model = self._mesh_backend(name)
            result = model.reconstruct(image, options, on_progress=_reporter(on_progress, 0.5 if texture == "multiview" else 0.8))
            if texture == "multiview":
                self._paint_multiview(result, image, options, on_progress)
            else:
                result.params["texture"] = {"mode": "project"}
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
        actor: str = "",
        on_progress: ProgressFn | None = None,
    ) -> Design:
        """Text -> textured mesh design (no parent)."""
        options, size_cm = self._mesh_options(size_cm=size_cm, category=category, resolution=None,
                                              face_budget=face_budget, texture_size=texture_size,
                                              material=material, seed=seed)
        with translate_errors():
            model = self._mesh_backend(backend, text=True)
            result = model.generate(prompt, options, on_progress=_reporter(on_progress))
        project_id = self.store.project(project).id
        return self._save_mesh(result, options, size_cm=size_cm, project_id=project_id, parent=None, prompt=prompt,
                               previews=previews, actor=actor, on_progress=on_progress)

    def _paint_multiview(self, result, image, options, on_progress) -> None:
        """Repaint ``result.mesh`` from six generated views; the record (and the views, as a file) go in params."""
        import time

        from pipelines.background import prepare_image
        from pipelines.render import png_bytes
        from pipelines.texture import PaintOptions, paint_mesh

        d = self.mesh_defaults
        generator = self._model("multiview")

        def report(stage: str, fraction: float) -> None:
            if on_progress:
                on_progress(0.5 + 0.3 * fraction, stage)

        paint = PaintOptions(view_size=int(d["multiview_size"]), steps=int(d["multiview_steps"]), seed=options.seed)
        start = time.perf_counter()
        reference = prepare_image(image, self._segmenter(), margin=0.05)  # the object alone, for the reference pass
        cutout_seconds = time.perf_counter() - start
        result.mesh, record, views = paint_mesh(result.mesh, reference.image, generator, paint, on_progress=report)
        record["timings"] = {"reference_cutout": round(cutout_seconds, 4), **record["timings"]}
        record["reference_mask"] = reference.mask_source
        strip = _side_by_side(views)
        record["views_file"], _ = self.store.files.put(png_bytes(strip), ".png")
        result.params["texture"] = record
        result.params.setdefault("timings", {}).update(record["timings"])

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

    def _store_mesh_designs(self, items: list[dict], actor: str) -> list[Design]:
        """Stamp provenance into each GLB, store it, record the designs, then sign and ledger them."""
        rows = []
        for item in items:
            parent = item["parent"]
            uid = self._new_uid()
            params = dict(item["params"], uid=uid, **self._governance_params())
            glb = self._stamp_glb(item["glb"], dict(
                design_uid=uid, actor=actor, prompt=item["prompt"], seed=item["seed"], model=item["model"],
                revision=item["revision"], params=params, kind="mesh",
                parents=[parent.uid or str(parent.id)] if parent is not None else [],
            ))
            rel, digest = self.store.files.put(glb, ".glb")
            rows.append(dict(
                project_id=item["project_id"], kind="mesh", parent_id=parent.id if parent is not None else None,
                prompt=item["prompt"], negative_prompt=item["negative_prompt"], seed=item["seed"],
                model=item["model"], revision=item["revision"], params=params, file=rel, sha256=digest,
                created_by=actor, uid=uid,
            ))
        designs = self.store.add_designs(rows)
        self._after_designs_created(designs, actor)
        return designs

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
            return {f"{name}.zip": export_zip(mesh, self.provenance(design), name, sign=self.sign_provenance)}

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
        actor: str = "",
    ) -> list[Design]:
        """N recoloured variants of a textured mesh, each a mesh design whose parent is that mesh."""
        from pipelines.mesh import export_glb
        from pipelines.mesh.colourways import colourway, parse_colour

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


def _reporter(on_progress, share: float = 0.8):
    if on_progress is None:
        return None

    def report(stage: str, fraction: float) -> None:
        on_progress(fraction * share, stage)

    return report


def _side_by_side(images):
    """The six generated views in one row (front, right, back, left, top, bottom)."""
    from PIL import Image

    w, h = images[0].size
    strip = Image.new("RGB", (w * len(images), h))
    for i, image in enumerate(images):
        strip.paste(image, (i * w, 0))
    return strip


def _hunyuan_message(entry) -> str:
    return (
        f"{entry.repo_id} is not installed. WARNING: its licence ({entry.licence_line}) excludes the EU, UK and "
        "South Korea and it is not a default; to opt in, install the hy3dgen package and its weights yourself "
        "after checking your territory"
    )
