"""The ``Studio``: settings, store and loaded models in one object; use cases come from mixins.

Models load lazily on first use and stay loaded (keyed by profile and role), so the second
request never reloads weights. Every use case validates its input before touching a model or a file.
Each area's use cases live in their own module (``concepts.py``, ``meshes.py``, …) as a mixin.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .. import catalog
from ..private_paths import prepare_data_dir
from ..settings import Settings
from ..store import Design, Store
from .base import translate_errors
from .batch import BatchMixin
from .concepts import ConceptsMixin
from .governance import GovernanceMixin
from .meshes import MeshesMixin
from .team import TeamMixin
from .trace import TraceService


class Studio(ConceptsMixin, MeshesMixin, TeamMixin, BatchMixin, GovernanceMixin):
    """One per process. Thread-safe for model loading; the UI queue serialises GPU work."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        prepare_data_dir(self.settings.data_dir)
        self.store = Store(self.settings.resolved_database_url, self.settings.files_dir)
        self._models: dict[tuple[str, str], object] = {}
        self._lock = threading.RLock()
        self._device: str | None = None
        self.tracer = TraceService(self.store, lambda path: self.verify_file(path))

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
        """Every role of the profile; tiny twins count as present (they are built on first use)."""
        return catalog.status(self.settings.profile, self.settings.resolved_models_dir, build_tiny=False)

    def _model(self, role: str):
        key = (self.settings.profile, role)
        with self._lock:
            if key not in self._models:
                entry, path = catalog.require(self.settings.profile, role, self.settings.resolved_models_dir)
                self._check_model_path(path)  # governance hook: guarded mode refuses pickles / remote code
                base = catalog.base_of(entry, self.settings.resolved_models_dir)  # an adapter's base model
                if base is not None:
                    self._check_model_path(base[1])
                self._models[key] = self._load(role, entry, path, base_path=base[1] if base else None)
            return self._models[key]

    def _load(self, role: str, entry: catalog.ModelEntry, path: Path, base_path: Path | None = None):
        from pipelines.devices import resolve_dtype

        return catalog.load_entry(entry, path, self.device, resolve_dtype(self.settings.dtype, self.device),
                                  base_path=base_path)

    def concept_limits(self):
        from pipelines.concept import ConceptLimits

        s = self.settings
        return ConceptLimits(max_prompt_chars=s.max_prompt_chars, max_steps=s.max_steps,
                             max_images=s.max_images, max_side=s.max_side)

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
