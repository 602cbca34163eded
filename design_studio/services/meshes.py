"""Use cases of 3D: image or prompt -> textured mesh design (with previews), exports, colourways."""
from __future__ import annotations

from .. import catalog
from ..access import AccessPolicy, Actor
from ..bom import export_bom, mesh_bom
from ..errors import InvalidRequest
from ..settings import Settings
from ..store import Design, Store
from .base import ProgressFn, translate_errors
from .designs import DesignWriter, NewDesign
from .models import ModelCache

EXPORT_FORMATS = ("glb", "obj", "usdz", "zip")
MAX_MESH_PROMPT_CHARS = 500
TOPOLOGIES = ("triangles", "quads")


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

    def mesh_backends(self) -> list[tuple[catalog.MeshBackend, catalog.ModelEntry]]:
        """Every 3D backend with the catalogue entry it would use in this profile."""
        return catalog.backends_for(self.settings.profile)

    def backend(self, name: str, *, text: bool = False):
        info = catalog.mesh_backend(name)
        if text and not info.text_role:
            raise InvalidRequest(f"3D backend {name!r} makes 3D from images only; text -> 3D needs 'shap-e'")
        return self.models.get(info.text_role if text else info.role)

    def _mesh_options(self, *, backend, size_cm, category, resolution, face_budget, texture_size, material, seed):
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
        if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)):
            raise InvalidRequest(f"resolution must be a whole number, got {resolution!r}")
        if face_budget is not None and face_budget < 4:
            raise InvalidRequest(f"face budget must be at least 4 faces, got {face_budget}")
        # --resolution sets the grid the chosen backend works on: relief columns or the field grid.
        sizes = {"resolution": int(self.models.defaults.get("mesh_resolution", 128)), "grid": int(d["grid"])}
        if resolution is not None:
            sizes[catalog.mesh_backend(backend).resolution_option] = resolution
        options = MeshOptions(
            size_m=float(size_cm) / 100.0, face_budget=int(face_budget or d["face_budget"]),
            texture_size=int(texture_size or d["texture_size"]), material=material or "leather",
            seed=int(seed or 0), **sizes,
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
        topology: str = "triangles",
        actor: Actor | None = None,
        on_progress: ProgressFn | None = None,
        prompt: str | None = None,
    ) -> Design:
        """Image design -> textured mesh design (GLB) whose parent is the image; previews saved with it.

        ``topology="quads"`` remeshes into quads for CAD/CLO handoff (OBJ and USDZ keep the quads).
        ``prompt`` goes with backends that read the image as a sketch (``triposg-scribble``) and only with them.
        ``texture`` "project" keeps the backend's texture (the concept image projected); "multiview"
        repaints it from six MV-Adapter views of the mesh conditioned on the concept image."""
        from pipelines.images import open_image

        actor = self.access.check(actor, "create")  # before any model work
        parent = self.store.design(design_id)
        if parent.kind != "image":
            raise InvalidRequest(f"design {design_id} is a {parent.kind}; choose an image design to make 3D from")
        name = backend or self.mesh_defaults["backend"]
        _check_topology(topology)
        extra = _sketch_prompt(catalog.mesh_backend(name), prompt)
        texture = texture or self.mesh_defaults["texture"]
        if texture not in catalog.TEXTURE_MODES:
            raise InvalidRequest(f"texture {texture!r} is not one of {', '.join(catalog.TEXTURE_MODES)}")
        options, size_cm = self._mesh_options(backend=name, size_cm=size_cm, category=category,
                                              resolution=resolution, face_budget=face_budget,
                                              texture_size=texture_size, material=material, seed=seed)
        with translate_errors():
            image = open_image(self.store.file_path(parent), max_pixels=self.settings.max_image_pixels)
            model = self.backend(name)
            result = model.reconstruct(image, options, on_progress=_reporter(on_progress, 0.5 if texture == "multiview"
                                                                              else 0.8), **extra)
            if texture == "multiview":
                self._paint_multiview(result, image, options, on_progress)
            else:
                result.params["texture"] = {"mode": "project"}
        return self._save_mesh(result, options, size_cm=size_cm, project_id=parent.project_id, parent=parent,
                               previews=previews, topology=topology, actor=actor, on_progress=on_progress,
                               prompt=extra.get("prompt", ""))

    def make_mesh_from_prompt(
        self,
        prompt: str,
        *,
        backend: str = "shap-e",
        project: str | None = None,
        resolution: int | None = None,
        size_cm: float | None = 30.0,
        category: str | None = None,
        face_budget: int | None = None,
        texture_size: int | None = None,
        material: str | None = None,
        seed: int | None = None,
        previews: bool = True,
        topology: str = "triangles",
        actor: Actor | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Design:
        """Text -> textured mesh design (no parent)."""
        actor = self.access.check(actor, "create")
        _check_topology(topology)
        options, size_cm = self._mesh_options(backend=backend, size_cm=size_cm, category=category,
                                              resolution=resolution, face_budget=face_budget,
                                              texture_size=texture_size, material=material, seed=seed)
        with translate_errors():
            model = self.backend(backend, text=True)
            result = model.generate(prompt, options, on_progress=_reporter(on_progress))
        project_id = self.store.project(project).id
        return self._save_mesh(result, options, size_cm=size_cm, project_id=project_id, parent=None, prompt=prompt,
                               previews=previews, topology=topology, actor=actor, on_progress=on_progress)

    def _paint_multiview(self, result, image, options, on_progress) -> None:
        """Repaint ``result.mesh`` from six generated views; the record (and the views, as a file) go in params."""
        import time

        from pipelines.background import prepare_image
        from pipelines.render import png_bytes
        from pipelines.texture import PaintOptions, paint_mesh

        d = self.mesh_defaults
        generator = self.models.get("multiview")

        def report(stage: str, fraction: float) -> None:
            if on_progress:
                on_progress(0.5 + 0.3 * fraction, stage)

        paint = PaintOptions(view_size=int(d["multiview_size"]), steps=int(d["multiview_steps"]), seed=options.seed)
        start = time.perf_counter()
        reference = prepare_image(image, margin=0.05)  # the object alone, for the reference pass
        cutout_seconds = time.perf_counter() - start
        result.mesh, record, views = paint_mesh(result.mesh, reference.image, generator, paint, on_progress=report)
        record["timings"] = {"reference_cutout": round(cutout_seconds, 4), **record["timings"]}
        record["reference_mask"] = reference.mask_source
        strip = _side_by_side(views)
        record["views_file"], _ = self.store.files.put(png_bytes(strip), ".png")
        result.params["texture"] = record
        result.params.setdefault("timings", {}).update(record["timings"])

    def _save_mesh(self, result, options, *, size_cm, project_id, parent, previews, actor, on_progress,
                   prompt: str = "", topology: str = "triangles") -> Design:
        import time

        from pipelines.mesh import export_glb

        timings = result.params.setdefault("timings", {})
        if topology == "quads":
            from pipelines.mesh.remesh import quad_remesh

            if on_progress:
                on_progress(0.8, "remeshing into quads")
            start = time.perf_counter()
            with translate_errors():
                # The face budget counts triangles (GLB): each quad is two of them.
                quads = quad_remesh(result.mesh, target_faces=max(options.face_budget // 2, 16),
                                    texture_size=options.texture_size,
                                    material=options.material, seed=options.seed)
                result.mesh = quads.triangulated()  # GLB holds triangles: each quad as two, listed first
            timings["remesh"] = time.perf_counter() - start
            result.params["topology"] = dict(quads.report, kind="quads")
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
            glb=glb, project_id=project_id, parent=parent, prompt=prompt or (parent.prompt if parent else ""),
            negative_prompt=parent.negative_prompt if parent else "", seed=parent.seed if parent else options.seed,
            model=result.model, revision=result.revision, params=params,
        )], actor)[0]

    def _store_mesh_designs(self, items: list[dict], actor: Actor | None) -> list[Design]:
        """Each GLB becomes a mesh design through the design writer (stamped, signed, in the ledger); its
        bill of materials (every model and runtime part that touched the mesh) goes into the signed params."""
        for item in items:
            item["params"] = dict(item["params"], bom=mesh_bom(
                item["model"], item["revision"], item["params"], profile=self.settings.profile,
                models_dir=self.settings.resolved_models_dir, parent=item["parent"]))
        return self.designs.create([NewDesign(
            kind="mesh", record_kind="mesh", content=item["glb"], project_id=item["project_id"],
            params=item["params"], parent=item["parent"], prompt=item["prompt"],
            negative_prompt=item["negative_prompt"], seed=item["seed"], model=item["model"],
            revision=item["revision"],
        ) for item in items], actor)

    # ------------------------------------------------------------------ previews
    def render_previews(self, mesh, *, frames: int | None = None) -> dict:
        """Thumbnail PNG + turntable GIF and MP4 in the file store; ``{"error": why}`` when no GL is available.
        The MP4 is left out (``mp4_error`` says why) when imageio-ffmpeg is missing."""
        from pipelines import render

        d = self.mesh_defaults
        ok, why = render.gl_available()
        if not ok:
            return {"error": why}
        frames = int(frames or d["turntable_frames"])
        with translate_errors():
            thumb = render.png_bytes(render.render_thumbnail(mesh, d["preview_size"]))
            turntable = render.render_turntable(mesh, frames, d["preview_size"])
            gif = render.gif_bytes(turntable)
        mp4, mp4_error = None, ""
        try:
            mp4 = render.mp4_bytes(turntable, fps=render.TURNTABLE_FPS)
        except render.InvalidInput as exc:
            mp4_error = str(exc)
        thumb_rel, _ = self.store.files.put(thumb, ".png")
        gif_rel, _ = self.store.files.put(gif, ".gif")
        shots = {"thumbnail": thumb_rel, "turntable": gif_rel, "frames": frames}
        if mp4 is not None:
            shots["turntable_mp4"] = self.store.files.put(mp4, ".mp4")[0]
        else:
            shots["mp4_error"] = mp4_error
        return shots

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
        """``{filename: bytes}`` of a mesh design as GLB, OBJ+MTL+PNG, USDZ, or a ZIP of GLB and OBJ plus
        provenance. A quad-remeshed design keeps its quads in OBJ and USDZ (GLB holds triangles only)."""
        from pipelines.mesh.export import export, export_zip

        if fmt not in EXPORT_FORMATS:
            raise InvalidRequest(f"format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
        design, mesh = self.load_mesh(design_id)
        name = f"design-{design.id}"
        if fmt == "glb":
            return {f"{name}.glb": self.store.file_path(design).read_bytes()}
        quads = int(((design.params or {}).get("topology") or {}).get("quads", 0))
        with translate_errors():
            if fmt == "obj" and quads:
                from pipelines.mesh.remesh import quad_obj_from_mesh

                return quad_obj_from_mesh(mesh, quads, name)
            if fmt == "usdz":
                from pipelines.mesh.usdz import export_usdz

                record = dict(self.provenance(design), bom=export_bom((design.params or {}).get("bom"), fmt))
                return {f"{name}.usdz": export_usdz(mesh, name, quads=quads, provenance=record)}
            if fmt == "obj":
                return export(mesh, "obj", name)
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


def _sketch_prompt(info: catalog.MeshBackend, prompt: str | None) -> dict:
    """``{"prompt": ...}`` for a backend that reads a sketch with a prompt, ``{}`` otherwise; a missing,
    overlong or unwanted prompt is refused before any model is loaded."""
    if info.needs_prompt:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequest(f"3D backend {info.name!r} makes 3D from a sketch and a prompt; the prompt is empty: "
                                 "say what the sketch shows")
        if len(prompt) > MAX_MESH_PROMPT_CHARS:
            raise InvalidRequest(f"prompt is {len(prompt)} characters; at most {MAX_MESH_PROMPT_CHARS} are accepted")
        return {"prompt": prompt.strip()}
    if prompt:
        needs = [b.name for b in catalog.MESH_BACKENDS.values() if b.needs_prompt]
        raise InvalidRequest(f"3D backend {info.name!r} makes 3D from the image alone and takes no prompt; "
                             f"sketch + prompt needs {' or '.join(map(repr, needs))}")
    return {}


def _check_topology(topology: str) -> None:
    if topology not in TOPOLOGIES:
        raise InvalidRequest(f"topology {topology!r} is not one of {', '.join(TOPOLOGIES)}")


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
