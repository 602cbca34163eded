"""Depth-relief backend: a depth-estimation model turns the concept image into a closed relief.

The front surface follows the predicted depth, a flat back and side walls close it, and the
concept image is its UV-mapped base-colour texture. Fast and faithful to the picture's front view;
it cannot invent the back of an object.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..images import flatten_on_white
from .base import MeshOptions, MeshResult, check_options


def _grid_faces(rows: int, cols: int) -> np.ndarray:
    """Two counter-clockwise (seen from +z) triangles per grid cell, row-major vertex order."""
    i, j = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (i * cols + j).ravel()
    b = a + 1
    c = a + cols
    d = c + 1
    return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])


def _boundary_loop(rows: int, cols: int) -> np.ndarray:
    top = np.arange(cols)
    right = np.arange(1, rows) * cols + (cols - 1)
    bottom = (rows - 1) * cols + np.arange(cols - 2, -1, -1)
    left = np.arange(rows - 2, 0, -1) * cols
    return np.concatenate([top, right, bottom, left])


def relief_mesh(depth: np.ndarray, texture: Image.Image, options: MeshOptions):
    """Build a closed, textured relief from a (rows, cols) depth map in [0, 1] (1 = nearest)."""
    import trimesh
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    rows, cols = depth.shape
    aspect = rows / cols
    width, height = (1.0, aspect) if aspect <= 1 else (1.0 / aspect, 1.0)
    xs = np.linspace(-width / 2, width / 2, cols)
    ys = np.linspace(height / 2, -height / 2, rows)
    gx, gy = np.meshgrid(xs, ys)
    n = rows * cols
    front = np.stack([gx.ravel(), gy.ravel(), options.thickness + options.relief * depth.ravel()], 1)
    back = front.copy()
    back[:, 2] = 0.0
    vertices = np.concatenate([front, back])

    grid = _grid_faces(rows, cols)
    loop = _boundary_loop(rows, cols)
    nxt = np.roll(loop, -1)
    # Walls: each boundary edge (p -> q) of the front joins its twin on the back.
    walls = np.concatenate([np.stack([p := loop, nxt + n, nxt], 1), np.stack([p, p + n, nxt + n], 1)])
    faces = np.concatenate([grid, grid[:, ::-1] + n, walls])

    u, v = np.meshgrid(np.linspace(0, 1, cols), np.linspace(1, 0, rows))
    uv_front = np.stack([u.ravel(), v.ravel()], 1)
    uv = np.concatenate([uv_front, uv_front])

    material = PBRMaterial(
        baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=0.7, doubleSided=False, name="concept"
    )
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, visual=TextureVisuals(uv=uv, material=material), process=False)
    mesh.fix_normals()
    # Centre on the origin and scale so the largest extent equals the asked size in metres.
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(options.size_m / float(mesh.extents.max()))
    return mesh


class DepthReliefBackend:
    """Depth relief from a transformers depth-estimation model (Depth Anything class)."""

    name = "depth-relief"

    def __init__(self, model, processor, *, model_name: str, revision: str = "local", device: str = "cpu"):
        self.model = model
        self.processor = processor
        self.model_name = model_name
        self.revision = revision
        self.device = device

    @classmethod
    def load(cls, path: str | Path, *, model_name: str, revision: str = "local", device: str = "cpu"):
        """Load with transformers' own loaders, local safetensors only."""
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        from ..devices import quiet_libraries

        quiet_libraries()
        model = AutoModelForDepthEstimation.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
        model.to(device).eval()
        return cls(model, processor, model_name=model_name, revision=revision, device=device)

    def estimate_depth(self, image: Image.Image, rows: int, cols: int) -> np.ndarray:
        """Relative depth resized to (rows, cols), normalised to [0, 1] with 1 nearest the camera."""
        import torch

        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        depth = self.processor.post_process_depth_estimation(outputs, target_sizes=[(rows, cols)])[0]
        depth = depth["predicted_depth"].float().cpu().numpy()
        lo, hi = float(depth.min()), float(depth.max())
        return np.zeros_like(depth) if hi - lo < 1e-8 else (depth - lo) / (hi - lo)

    def reconstruct(
        self, image: Image.Image, options: MeshOptions, on_progress: Callable[[str, float], None] | None = None
    ) -> MeshResult:
        options = check_options(options)
        rgb = flatten_on_white(image)
        w, h = rgb.size
        cols = int(options.resolution)
        rows = max(2, round(cols * h / w))
        if on_progress:
            on_progress("estimating depth", 0.1)
        depth = self.estimate_depth(rgb, rows, cols)
        if on_progress:
            on_progress("building the mesh", 0.6)
        texture = rgb.copy()
        texture.thumbnail((options.texture_size, options.texture_size))
        mesh = relief_mesh(depth, texture, options)
        return MeshResult(
            mesh=mesh,
            backend=self.name,
            model=self.model_name,
            revision=self.revision,
            params={"resolution": cols, "size_m": options.size_m, "relief": options.relief},
        )
