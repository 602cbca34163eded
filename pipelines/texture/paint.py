"""Texture a UV-mapped mesh from six generated views: geometry maps -> MV-Adapter views -> back-projection."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInput
from .backproject import bake_views, seam_gaps


@dataclass
class PaintOptions:
    """Knobs of multi-view painting; the defaults are MV-Adapter's published recipe at 768 px."""

    view_size: int = 768
    steps: int = 50
    guidance: float = 3.0
    reference_scale: float = 1.0
    prompt: str = "high quality"
    seed: int = 0
    sharpness: float = 4.0


def paint_mesh(mesh, reference, generator, options: PaintOptions, *, on_progress=None):
    """A copy of ``mesh`` (glTF frame, with UVs and a PBR material) whose base colour is painted from six
    views of ``generator`` (a ``MultiViewGenerator``); returns (mesh, record of every stage, the six views)."""
    import torch
    from PIL import Image

    from .. import render

    uv = getattr(mesh.visual, "uv", None)
    if uv is None or len(uv) != len(mesh.vertices):
        raise InvalidInput("multi-view texturing needs a mesh with one UV per vertex (run the UV unwrap first)")
    material = getattr(mesh.visual, "material", None)
    texture_size = material.baseColorTexture.size[0] if getattr(material, "baseColorTexture", None) else 1024
    timings: dict[str, float] = {}

    def stage(name, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[name] = round(time.perf_counter() - start, 4)
        return out

    frame = render.ViewFrame.fit(mesh.vertices)
    points = frame.points(mesh.vertices)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    views = render.mv_adapter_views()
    maps = stage("geometry_maps", render.render_geometry_maps, points, faces, views, options.view_size)
    if on_progress:
        on_progress("generating views", 0.1)
    rng = torch.Generator(device="cpu").manual_seed(int(options.seed))

    def step(i, n):
        if on_progress:
            on_progress(f"view generation step {i}/{n}", 0.1 + 0.7 * i / n)

    images = stage("multiview", generator, reference, maps.control_images(), prompt=options.prompt,
                   steps=options.steps, guidance=options.guidance, reference_scale=options.reference_scale,
                   generator=rng, on_step=step)
    normals = render.stitched_vertex_normals(points, faces)
    texture, report = stage("backproject", bake_views, points, faces, np.asarray(uv), normals, views, images,
                            maps.depth, texture_size, sharpness=options.sharpness)
    gaps = stage("seam_check", seam_gaps, points, faces, np.asarray(uv), texture)
    painted = mesh.copy()
    painted.visual.material.baseColorTexture = texture
    record = {
        "mode": "multiview", "model": generator.model_name, "revision": generator.revision,
        "base_model": generator.base_name, "base_revision": generator.base_revision,
        "views": list(render.MV_VIEW_NAMES), "view_size": int(options.view_size), "steps": int(options.steps),
        "guidance": float(options.guidance), "reference_scale": float(options.reference_scale),
        "seed": int(options.seed), "texture_size": int(texture_size), "renderer": "studio numpy rasteriser",
        "texels_seen": round(report["seen"], 4), "texels_filled": report["filled"],
        # mean and worst RGB difference (0..1) across UV seams: both sides of a seam should match
        "seam_gap_mean": round(float(gaps.mean()), 4) if len(gaps) else 0.0,
        "seam_gap_max": round(float(gaps.max()), 4) if len(gaps) else 0.0, "timings": timings,
    }
    return painted, record, [Image.fromarray((np.clip(v, 0, 1) * 255 + 0.5).astype(np.uint8)) for v in images]
