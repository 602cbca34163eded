"""The ``Studio``: settings, store and loaded models in one object; the use cases are its methods.

Models load lazily on first use and stay loaded (keyed by profile and role), so the second
request never reloads weights. Every method validates its input before touching a model or a file.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .. import catalog
from ..errors import InvalidRequest, ResourceExhausted, StudioError
from ..settings import Settings
from ..store import Design, Store

ProgressFn = Callable[[float, str], None]


@contextmanager
def translate_errors():
    """Turn pipeline and torch errors into studio errors a designer can read."""
    from pipelines.errors import InvalidInput, OutOfMemory

    try:
        yield
    except StudioError:
        raise
    except InvalidInput as exc:
        raise InvalidRequest(str(exc)) from None
    except OutOfMemory as exc:
        raise ResourceExhausted(str(exc)) from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise ResourceExhausted(
                "the GPU ran out of memory; try fewer images, a smaller size, or the draft preset"
            ) from None
        raise


class Studio:
    """One per process. Thread-safe for model loading; the UI queue serialises GPU work."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.settings.resolved_database_url, self.settings.files_dir)
        self._models: dict[tuple[str, str], object] = {}
        self._lock = threading.RLock()
        self._device: str | None = None

    # ------------------------------------------------------------------ models
    @property
    def device(self) -> str:
        if self._device is None:
            from pipelines.devices import resolve_device

            with translate_errors():
                self._device = resolve_device(self.settings.device)
        return self._device

    @property
    def defaults(self) -> dict:
        values = dict(catalog.PROFILE_DEFAULTS[self.settings.profile])
        if self.settings.default_steps:
            values["steps"] = self.settings.default_steps
        return values

    def model_status(self) -> list[catalog.ModelStatus]:
        return catalog.status(self.settings.profile, self.settings.resolved_models_dir)

    def _model(self, role: str):
        key = (self.settings.profile, role)
        with self._lock:
            if key not in self._models:
                entry, path = catalog.require(self.settings.profile, role, self.settings.resolved_models_dir)
                self._models[key] = self._load(role, entry, path)
            return self._models[key]

    def _load(self, role: str, entry: catalog.ModelEntry, path: Path):
        from pipelines.devices import resolve_dtype

        dtype = resolve_dtype(self.settings.dtype, self.device)
        if role == "concept":
            from pipelines.concept import ConceptModel

            return ConceptModel.load(path, name=entry.repo_id, revision=entry.revision, device=self.device, dtype=dtype)
        if role == "depth":
            from pipelines.mesh.depth_relief import DepthReliefBackend

            return DepthReliefBackend.load(path, model_name=entry.repo_id, revision=entry.revision, device=self.device)
        raise InvalidRequest(f"no loader for the model role {role!r}")

    def concept_limits(self):
        from pipelines.concept import ConceptLimits

        s = self.settings
        return ConceptLimits(max_prompt_chars=s.max_prompt_chars, max_steps=s.max_steps,
                             max_images=s.max_images, max_side=s.max_side)

    # --------------------------------------------------------------- use cases
    def generate_concepts(
        self,
        prompt: str,
        *,
        n: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
        negative_prompt: str = "",
        project: str | None = None,
        actor: str = "",
        on_progress: ProgressFn | None = None,
    ) -> list[Design]:
        """Text -> N concept images, each saved as a PNG with its parameters and recorded as a design."""
        from pipelines.concept import ConceptRequest, check_request, png_bytes

        d = self.defaults
        req = ConceptRequest(
            prompt=prompt,
            negative_prompt=negative_prompt or "",
            n=self.settings.default_images if n is None else n,
            seed=seed,
            steps=d["steps"] if steps is None else steps,
            guidance=d["guidance"] if guidance is None else guidance,
            width=d["width"] if width is None else width,
            height=d["height"] if height is None else height,
        )
        limits = self.concept_limits()
        with translate_errors():
            check_request(req, limits)  # 1. everything checked before any model work
            model = self._model("concept")
            on_step = None
            if on_progress is not None:
                def on_step(step: int, total: int) -> None:
                    on_progress(step / total, f"denoising step {step} of {total}")
            images = model.generate(req, limits=limits, on_step=on_step)
        proj = self.store.project(project)
        rows = []
        for item in images:
            meta = dict(item.params, project=proj.name, created_by=actor, kind="image")
            rel, digest = self.store.files.put(png_bytes(item.image, meta), ".png")
            rows.append(dict(
                project_id=proj.id, kind="image", prompt=req.prompt, negative_prompt=req.negative_prompt,
                seed=item.seed, model=model.name, revision=model.revision, params=item.params,
                file=rel, sha256=digest, created_by=actor,
            ))
        return self.store.add_designs(rows)

    def import_image(self, source: str | Path | bytes, *, project: str | None = None, actor: str = "",
                     name: str | None = None) -> Design:
        """Record an uploaded image (validated, re-encoded as PNG) as an image design."""
        from pipelines.concept import png_bytes
        from pipelines.images import open_image

        with translate_errors():
            image = open_image(source, max_pixels=self.settings.max_image_pixels, name=name)
        meta = {"model": "upload", "source_name": name or (str(source) if not isinstance(source, bytes) else "")}
        rel, digest = self.store.files.put(png_bytes(image, meta), ".png")
        proj = self.store.project(project)
        return self.store.add_design(project_id=proj.id, kind="image", model="upload", revision="",
                                     params=meta, file=rel, sha256=digest, created_by=actor)

    def make_mesh(
        self,
        design_id: int,
        *,
        resolution: int | None = None,
        size_cm: float = 30.0,
        actor: str = "",
        on_progress: ProgressFn | None = None,
    ) -> Design:
        """Image design -> textured GLB mesh design whose parent is the image."""
        from pipelines.images import open_image
        from pipelines.mesh import MeshOptions, check_options, export_glb

        parent = self.store.design(design_id)
        if parent.kind != "image":
            raise InvalidRequest(f"design {design_id} is a {parent.kind}; choose an image design to make 3D from")
        options = MeshOptions(resolution=resolution or self.defaults["mesh_resolution"], size_m=size_cm / 100.0)
        with translate_errors():
            check_options(options)
            image = open_image(self.store.file_path(parent), max_pixels=self.settings.max_image_pixels)
            backend = self._model("depth")
            report = None
            if on_progress is not None:
                def report(stage: str, fraction: float) -> None:
                    on_progress(fraction, stage)
            result = backend.reconstruct(image, options, on_progress=report)
            glb = export_glb(result.mesh)
        rel, digest = self.store.files.put(glb, ".glb")
        params = dict(result.params, backend=result.backend, faces=int(len(result.mesh.faces)),
                      vertices=int(len(result.mesh.vertices)), size_cm=size_cm)
        return self.store.add_design(
            project_id=parent.project_id, kind="mesh", parent_id=parent.id, prompt=parent.prompt,
            negative_prompt=parent.negative_prompt, seed=parent.seed, model=result.model,
            revision=result.revision, params=params, file=rel, sha256=digest, created_by=actor,
        )

    def file_path(self, design_id: int) -> Path:
        return self.store.file_path(self.store.design(design_id))

    def download_copy(self, design: Design) -> Path:
        """A copy of the design's file under a readable name (``design-12.glb``) for download."""
        import shutil

        source = self.store.file_path(design)
        target = self.settings.downloads_dir / str(design.id) / f"design-{design.id}{source.suffix}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return target
