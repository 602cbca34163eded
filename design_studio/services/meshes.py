"""Use cases of 3D: image design -> textured mesh design."""
from __future__ import annotations

from ..errors import InvalidRequest
from ..store import Design
from .base import ProgressFn, translate_errors


class MeshesMixin:
    """Mixed into ``Studio``; uses ``self.settings``, ``self.store``, ``self._model``."""

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
        params = dict(result.params, backend=result.backend, faces=int(len(result.mesh.faces)),
                      vertices=int(len(result.mesh.vertices)), size_cm=size_cm)
        uid = self._new_uid()  # governance hook
        glb = self._stamp_glb(glb, dict(design_uid=uid, actor=actor, prompt=parent.prompt, seed=parent.seed,  # governance hook
                                        model=result.model, revision=result.revision, params=params,
                                        parents=[parent.uid or str(parent.id)], kind="mesh"))
        rel, digest = self.store.files.put(glb, ".glb")
        design = self.store.add_design(
            project_id=parent.project_id, kind="mesh", parent_id=parent.id, prompt=parent.prompt,
            negative_prompt=parent.negative_prompt, seed=parent.seed, model=result.model,
            revision=result.revision, params=dict(params, uid=uid, **self._governance_params()), file=rel,
            sha256=digest, created_by=actor, uid=uid,
        )
        self._after_designs_created([design], actor)  # governance hook
        return design
