"""The model cache: the compute device, the profile's defaults and one loaded model per catalogue role.

Models load on first use and stay loaded (keyed by profile and role), so the second request never
reloads weights. In guarded mode a model folder with pickles or remote code is refused before
``from_pretrained`` runs.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .. import catalog
from ..errors import InvalidRequest
from ..settings import Settings
from .base import translate_errors


class ModelCache:
    """One per studio; thread-safe for loading (``lock`` also guards per-model set-up)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.lock = threading.RLock()
        self._models: dict[tuple[str, str], object] = {}
        self._device: str | None = None

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

    @property
    def mesh_defaults(self) -> dict:
        return dict(catalog.MESH_DEFAULTS[self.settings.profile])

    def status(self) -> list[catalog.ModelStatus]:
        """Every role of the profile; tiny twins count as present (they are built on first use)."""
        return catalog.status(self.settings.profile, self.settings.resolved_models_dir, build_tiny=False)

    def share(self, other: "ModelCache") -> None:
        """Use the models ``other`` has already loaded (same process; e.g. several studios on one machine)."""
        with self.lock:
            self._models = other._models

    def loaded(self, role: str):
        """The model of ``role`` when it is already loaded, else None (never loads)."""
        return self._models.get((self.settings.profile, role))

    def get(self, role: str):
        """The model of ``role`` in this profile, loaded once."""
        key = (self.settings.profile, role)
        with self.lock:
            if key not in self._models:
                entry, path = catalog.require(self.settings.profile, role, self.settings.resolved_models_dir)
                self.check_model_path(path)
                base = catalog.base_of(entry, self.settings.resolved_models_dir)  # an adapter's base model
                if base is not None:
                    self.check_model_path(base[1])
                self._models[key] = self._load(role, entry, path, base_path=base[1] if base else None)
            return self._models[key]

    def require_path(self, role: str) -> tuple[catalog.ModelEntry, Path]:
        """The catalogue entry and checked local folder of ``role`` (for training, which loads parts itself)."""
        entry, path = catalog.require(self.settings.profile, role, self.settings.resolved_models_dir)
        self.check_model_path(path)
        return entry, path

    def check_model_path(self, path: Path) -> None:
        """Guarded mode: a model folder with pickles or remote code is refused before from_pretrained."""
        if not self.settings.guarded:
            return
        from brand_guard.egress import check_model_dir
        from brand_guard.errors import UnsafeModel

        try:
            check_model_dir(path)
        except UnsafeModel as exc:
            raise InvalidRequest(str(exc)) from None

    def concept_limits(self):
        from pipelines.concept import ConceptLimits

        s = self.settings
        return ConceptLimits(max_prompt_chars=s.max_prompt_chars, max_steps=s.max_steps,
                             max_images=s.max_images, max_side=s.max_side)

    def _load(self, role: str, entry: catalog.ModelEntry, path: Path, base_path: Path | None = None):
        from pipelines.devices import resolve_dtype

        return catalog.load_entry(entry, path, self.device, resolve_dtype(self.settings.dtype, self.device),
                                  base_path=base_path)
