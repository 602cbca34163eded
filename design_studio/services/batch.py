"""Use cases of batch runs: check a job file, run it, and find or discard the designs a run made."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ..access import AccessPolicy
from ..errors import InvalidRequest
from ..settings import Settings
from ..store import Design, Store, transaction
from .concepts import ConceptService
from .meshes import MeshService
from .models import ModelCache


class BatchService:
    """Given settings, the store, the model cache, the concept and mesh services and the access policy; the run loop lives in
    ``design_studio.batch.runner`` and drives these through their public methods only."""

    def __init__(self, settings: Settings, store: Store, models: ModelCache, concepts: ConceptService,
                 meshes: MeshService, access: AccessPolicy):
        self.settings = settings
        self.store = store
        self.models = models
        self.concepts = concepts
        self.meshes = meshes
        self.access = access

    def run_batch(self, path: str | Path, out_dir: str | Path, **options):
        """Run a job file in this process (see ``design_studio.batch.runner.BatchRunner`` for options;
        ``actor`` is who the designs are recorded as)."""
        from ..batch.runner import BatchRunner

        return BatchRunner(self, path, out_dir, **options).run()

    def batch_limits(self):
        from ..batch.jobfile import JobLimits

        s, d = self.settings, self.models.defaults
        return JobLimits(
            max_prompt_chars=s.max_prompt_chars, max_steps=s.max_steps, max_images=s.max_images,
            max_side=s.max_side, max_image_pixels=s.max_image_pixels, default_n=s.default_images,
            default_steps=d["steps"], default_guidance=d["guidance"], default_width=d["width"],
            default_height=d["height"],
        )

    def load_batch(self, path: str | Path, *, default_project: str | None = None):
        """The checked job file (good rows and one problem per bad row); ``InvalidRequest`` if unreadable."""
        from dataclasses import replace

        from ..batch.jobfile import load_job

        limits = self.batch_limits()
        if default_project:
            limits = replace(limits, default_project=default_project)
        try:
            return load_job(path, limits)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def batch_designs(self, run_id: str, keys: set[str] | None = None) -> list[Design]:
        """Designs a batch run made (optionally only for some item keys), images and meshes."""
        with self.store.sessions() as s:
            rows = s.scalars(select(Design).where(Design.params["batch_run"].as_string() == run_id))
            found = [d for d in rows if keys is None or (d.params or {}).get("batch_key") in keys]
            ids = {d.id for d in found}
            # Meshes carry the tag through their parent image.
            found += list(s.scalars(select(Design).where(Design.parent_id.in_(ids)))) if ids else []
        unique = {d.id: d for d in found}
        return sorted(unique.values(), key=lambda d: d.id)

    def discard_batch_designs(self, run_id: str, keys: set[str]) -> int:
        """Delete the designs of unfinished items (children first) so redoing them records each once."""
        doomed = self.batch_designs(run_id, keys)
        if not doomed:
            return 0
        ids = [d.id for d in doomed]
        with transaction(self.store.sessions) as s:
            for design in sorted((s.get(Design, i) for i in ids), key=lambda d: d.parent_id is None):
                if design is not None:
                    s.delete(design)
                    s.flush()
        return len(ids)
