"""Shap-E through diffusers: text -> 3D (``ShapEPipeline``) and image -> 3D (``ShapEImg2ImgPipeline``).

The pipelines sample the latent; the mesh comes from our own decoding of it: the renderer's
params projection loads the implicit MLP, we query its signed distance on a grid, run scikit-image
marching cubes, and bake the MLP's colour channels. (diffusers' own ``output_type="mesh"`` needs
marching-cubes tables that only the real checkpoint fills, so random-weight twins would decode to
nothing.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InvalidInput
from .base import MeshOptions, MeshResult, check_options

MAX_PROMPT_CHARS = 500


def load_field(renderer, latent):
    """Load one latent into the renderer's implicit MLP (as diffusers does before decoding)."""
    params = renderer.params_proj(latent[None])
    state = renderer.mlp.state_dict()
    for name, param in state.items():
        if f"nerstf.{name}" in params:
            param.copy_(params[f"nerstf.{name}"].squeeze(0))


def query_field(renderer, points, chunk: int = 65536):
    """(signed distance, RGB) of the loaded implicit function at (N, 3) points in [-1, 1]^3."""
    import torch

    sdf, rgb = [], []
    for start in range(0, len(points), chunk):
        batch = points[None, start : start + chunk].to(dtype=renderer.mlp.dtype)
        out = renderer.mlp(position=batch, direction=None, ts=None, nerf_level="fine", rendering_mode="stf")
        sdf.append(out.signed_distance[0, :, 0].float())
        rgb.append(out.channels[0].float())
    return torch.cat(sdf), torch.cat(rgb)


class ShapEBackend:
    """Shap-E; ``pipe`` is a ``ShapEImg2ImgPipeline`` (image -> 3D) or a ``ShapEPipeline`` (text -> 3D)."""

    name = "shap-e"

    def __init__(self, pipe, *, model_name: str, revision: str = "local", device: str = "cpu", steps: int = 64,
                 guidance: float = 3.0):
        self.pipe = pipe
        self.model_name = model_name
        self.revision = revision
        self.device = device
        self.steps = steps
        self.guidance = guidance

    @property
    def takes_text(self) -> bool:
        return type(self.pipe).__name__ == "ShapEPipeline"

    @classmethod
    def load(cls, path: str | Path, *, model_name: str, revision: str = "local", device: str = "cpu", **kw):
        import json

        from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

        from ..devices import quiet_libraries

        quiet_libraries()
        index = json.loads((Path(path) / "model_index.json").read_text())
        pipe_cls = ShapEPipeline if index.get("_class_name") == "ShapEPipeline" else ShapEImg2ImgPipeline
        pipe = pipe_cls.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(device), model_name=model_name, revision=revision, device=device, **kw)

    def _latent(self, condition, options: MeshOptions):
        import torch

        generator = torch.Generator(device="cpu").manual_seed(int(options.seed))
        kwargs = dict(num_inference_steps=self.steps, guidance_scale=self.guidance, generator=generator,
                      output_type="latent")
        if self.takes_text:
            out = self.pipe(condition, **kwargs)
        else:
            out = self.pipe(image=condition, **kwargs)
        return out.images[0]

    def _decode(self, latent, options: MeshOptions, timer):
        import torch

        from .lrm import marching_cubes_field

        renderer = self.pipe.shap_e_renderer
        with torch.inference_mode(False), torch.no_grad():
            load_field(renderer, latent)
            n = int(options.grid)
            axis = torch.linspace(-1.0, 1.0, n, device=latent.device)
            grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
            sdf, _ = query_field(renderer, grid)
        field = sdf.reshape(n, n, n).cpu().numpy()
        return marching_cubes_field(field, 0.0, -1.0, 1.0)

    def _colour_fn(self, latent):
        import torch

        renderer = self.pipe.shap_e_renderer

        def colour(points: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                load_field(renderer, latent)  # the same renderer may have decoded another latent since
                _, rgb = query_field(renderer, torch.as_tensor(points, dtype=torch.float32, device=latent.device))
            return rgb.cpu().numpy()

        return colour

    def _run(self, condition, options, on_progress, timer, mask_source) -> MeshResult:
        from .post import StageTimer, finish

        timer = timer or StageTimer()
        if on_progress:
            on_progress("sampling the Shap-E latent", 0.1)
        with timer.stage("reconstruction"):
            latent = self._latent(condition, options)
            raw = self._decode(latent, options, timer)
        if on_progress:
            on_progress("cleaning, unwrapping and baking the texture", 0.5)
        # Shap-E objects stand on z with their front towards -y.
        mesh, report = finish(raw, self._colour_fn(latent), options, up="z", front="-y", timer=timer)
        return MeshResult(mesh=mesh, backend=self.name, model=self.model_name, revision=self.revision,
                          params={"grid": int(options.grid), "steps": self.steps, "guidance": self.guidance,
                                  "seed": int(options.seed), "mask": mask_source, "timings": timer.timings, **report})

    def reconstruct(self, image, options: MeshOptions, on_progress: Callable[[str, float], None] | None = None,
                    *, timer=None) -> MeshResult:
        from ..background import on_background, prepare_image
        from .post import StageTimer

        options = check_options(options)
        if self.takes_text:
            raise InvalidInput(f"the model {self.model_name} makes 3D from text; give a prompt, not an image")
        timer = timer or StageTimer()
        with timer.stage("background"):
            prepared = prepare_image(image, margin=0.1)
        return self._run(on_background(prepared.image), options, on_progress, timer, prepared.mask_source)

    def generate(self, prompt: str, options: MeshOptions, on_progress: Callable[[str, float], None] | None = None,
                 *, timer=None) -> MeshResult:
        """Text -> textured mesh."""
        options = check_options(options)
        if not self.takes_text:
            raise InvalidInput(f"the model {self.model_name} makes 3D from an image; give an image, not a prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInput("prompt is empty; describe the object to make in 3D")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInput(f"prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted")
        result = self._run(prompt.strip(), options, on_progress, timer, "none")
        result.params["prompt"] = prompt.strip()
        return result
