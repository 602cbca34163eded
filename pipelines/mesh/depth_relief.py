"""Depth-relief backend: a depth-estimation model turns the cut-out object into a closed, two-sided relief.

Only the object's pixels become surface; front and back bulge with the predicted depth and meet
thin at the outline, and the picture is projected onto it. Fast and faithful to the front view,
good for flat, thin parts (straps, panels); it cannot invent the back of an object.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

from ..errors import InvalidInput
from ..hf import ProcessorModel
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


class DepthReliefBackend(ProcessorModel):
    """Depth relief from a transformers depth-estimation model (Depth Anything class)."""

    name = "depth-relief"

    auto_class = "AutoModelForDepthEstimation"

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
        self,
        image: Image.Image,
        options: MeshOptions,
        on_progress: Callable[[str, float], None] | None = None,
        *,
        timer=None,
    ) -> MeshResult:
        """Cut-out, two-sided, smoothed relief of the object's pixels only."""
        from ..background import on_background, prepare_image
        from .post import StageTimer, finish

        # 1. Check inputs and prepare the image (mask, centring, square padding)
        options = check_options(options)
        timer = timer or StageTimer()
        with timer.stage("background"):
            prepared = prepare_image(image)
        rgba = prepared.image
        rgb = on_background(rgba)
        n = int(options.resolution)
        # 2. Depth, on the object only
        if on_progress:
            on_progress("estimating depth", 0.1)
        with timer.stage("reconstruction"):
            depth = self.estimate_depth(rgb, n, n)
            mask = np.asarray(rgba.getchannel("A").resize((n, n), Image.BILINEAR)) > 127
            raw = cutout_relief(depth, mask, options)
        if on_progress:
            on_progress("cleaning, unwrapping and baking the texture", 0.5)
        # 3. Post-process: the picture is projected front-to-back onto the surface
        mesh, report = finish(raw, image_projection_fn(rgb), options, timer=timer)
        return MeshResult(
            mesh=mesh, backend=self.name, model=self.model_name, revision=self.revision,
            params={"resolution": n, "size_m": options.size_m, "relief": options.relief,
                    "mask": prepared.mask_source, "timings": timer.timings, **report},
        )


def _fix_pinches(cells: np.ndarray, max_iter: int = 50) -> np.ndarray:
    """Add cells where two valid cells touch only at a corner, so every boundary vertex is manifold."""
    cells = cells.copy()
    for _ in range(max_iter):
        a, b = cells[:-1, :-1], cells[:-1, 1:]
        c, d = cells[1:, :-1], cells[1:, 1:]
        diag = a & d & ~b & ~c
        anti = b & c & ~a & ~d
        if not (diag.any() or anti.any()):
            break
        cells[:-1, 1:] |= diag  # fill the top-right cell of a "\\" pinch
        cells[:-1, :-1] |= anti  # and the top-left of a "/" pinch
    return cells


def cutout_relief(depth: np.ndarray, mask: np.ndarray, options: MeshOptions):
    """Closed two-sided relief over the masked grid cells only (a pillow, thin at the silhouette).

    Native frame: x right, y up, z towards the viewer, unit width. The front bulges by the depth,
    the back by half as much, and both taper to ``thickness`` at the outline so straps and panels
    stay thin instead of becoming slabs.
    """
    import trimesh
    from scipy import ndimage

    rows, cols = depth.shape
    cells = mask[:-1, :-1] & mask[:-1, 1:] & mask[1:, :-1] & mask[1:, 1:]
    cells = ndimage.binary_opening(cells, iterations=1) if cells.sum() > 64 else cells
    cells = _fix_pinches(cells)
    if not cells.any():
        raise InvalidInput("the object is too small or thin at this resolution; raise the resolution")
    used = np.zeros((rows, cols), bool)
    used[:-1, :-1] |= cells
    used[:-1, 1:] |= cells
    used[1:, :-1] |= cells
    used[1:, 1:] |= cells
    # Depth inside the object only: smooth, renormalise, taper towards the outline.
    d = ndimage.gaussian_filter(np.where(used, depth, 0.0), sigma=1.0)
    inside = d[used]
    d = (d - inside.min()) / max(float(np.ptp(inside)), 1e-8)
    taper = np.clip(ndimage.distance_transform_edt(used) / 4.0, 0.0, 1.0)
    d = np.clip(d, 0, 1) * (taper * taper * (3 - 2 * taper))
    half = options.thickness / 2
    front_z = half + options.relief * d
    back_z = -(half + 0.5 * options.relief * d)

    xs = np.linspace(-0.5, 0.5, cols)
    ys = np.linspace(0.5 * rows / cols, -0.5 * rows / cols, rows)
    gx, gy = np.meshgrid(xs, ys)
    n = rows * cols
    front = np.stack([gx.ravel(), gy.ravel(), front_z.ravel()], 1)
    back = np.stack([gx.ravel(), gy.ravel(), back_z.ravel()], 1)
    grid = _grid_faces(rows, cols)
    grid = grid[np.concatenate([cells.ravel(), cells.ravel()])]
    # Boundary edges of the front sheet, each joined to its twin on the back by a wall quad.
    edges = np.concatenate([grid[:, [0, 1]], grid[:, [1, 2]], grid[:, [2, 0]]])
    key = edges[:, 0] * n + edges[:, 1]
    rkey = edges[:, 1] * n + edges[:, 0]
    p, q = edges[~np.isin(key, rkey)].T
    walls = np.concatenate([np.stack([q, p, p + n], 1), np.stack([q, p + n, q + n], 1)])
    faces = np.concatenate([grid, grid[:, ::-1] + n, walls])
    mesh = trimesh.Trimesh(np.concatenate([front, back]), faces, process=False)
    mesh.remove_unreferenced_vertices()
    trimesh.smoothing.filter_taubin(mesh, iterations=4)
    return mesh


def image_projection_fn(rgb: Image.Image):
    """Colour of a point = the picture's pixel in front of it (orthographic, unit-width frame)."""
    pixels = np.asarray(rgb.convert("RGB"), dtype=np.float32) / 255.0
    h, w = pixels.shape[:2]

    def colour(points: np.ndarray) -> np.ndarray:
        u = np.clip(((points[:, 0] + 0.5) * (w - 1)).round().astype(int), 0, w - 1)
        v = np.clip(((0.5 * h / w - points[:, 1]) * (w - 1)).round().astype(int), 0, h - 1)
        return pixels[v, u]

    return colour
