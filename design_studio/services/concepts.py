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
            uid = self._new_uid()  # governance hook
            params = dict(item.params, uid=uid, **self._governance_params())  # governance hook
            data = self._stamp_png(item.image, dict(  # governance hook: watermark + signed record
                design_uid=uid, actor=actor, prompt=req.prompt, negative_prompt=req.negative_prompt, seed=item.seed,
                model=model.name, revision=model.revision, params=item.params, kind="concept"), extra_meta=meta)
            rel, digest = self.store.files.put(data, ".png")
            rows.append(dict(
                project_id=proj.id, kind="image", prompt=req.prompt, negative_prompt=req.negative_prompt,
                seed=item.seed, model=model.name, revision=model.revision, params=params,
                file=rel, sha256=digest, created_by=actor, uid=uid,
            ))
        designs = self.store.add_designs(rows)
        self._after_designs_created(designs, actor)  # governance hook: manifests + ledger events
        return designs

    def import_image(self, source: str | Path | bytes, *, project: str | None = None, actor: str = "",
                     name: str | None = None) -> Design:
        """Record an uploaded image (validated, re-encoded as PNG) as an image design."""
        from pipelines.concept import png_bytes
        from pipelines.images import open_image

        with translate_errors():
            image = open_image(source, max_pixels=self.settings.max_image_pixels, name=name)
        meta = {"model": "upload", "source_name": name or (str(source) if not isinstance(source, bytes) else "")}
        uid = self._new_uid()  # governance hook
        data = self._stamp_png(image, dict(design_uid=uid, actor=actor, model="upload", params=meta,  # governance hook
                                           kind="upload"), extra_meta=meta)
        rel, digest = self.store.files.put(data, ".png")
        proj = self.store.project(project)
        design = self.store.add_design(project_id=proj.id, kind="image", model="upload", revision="",
                                       params=dict(meta, uid=uid, **self._governance_params()), file=rel,
                                       sha256=digest, created_by=actor, uid=uid)
        self._after_designs_created([design], actor)  # governance hook
        return design
