"""Use cases of concept images: generate from text, import an uploaded image."""
from __future__ import annotations

from pathlib import Path

from ..store import Design
from .base import ProgressFn, translate_errors


class ConceptsMixin:
    """Mixed into ``Studio``; uses ``self.settings``, ``self.store``, ``self._model``."""

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
        extra_params: dict | None = None,
    ) -> list[Design]:
        """Text -> N concept images, each saved as a PNG with its parameters and recorded as a design.

        ``extra_params`` (e.g. a batch run's item key) are added to each image's parameters, both in
        the PNG metadata and in the design record.
        """
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
            if extra_params:
                item.params = dict(item.params, **extra_params)
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
