"""Multi-view images -> UV texture: per-texel visibility and view-angle weights, blend, fill what no view saw.

Every texel of the atlas is mapped to its 3D point and normal; each view contributes where the point
passes a depth test against that view's rendered depth and faces the camera, weighted by the cosine
between normal and view direction raised to ``sharpness``. Texels no view saw are filled in UV space
by push-pull (a weighted image pyramid: average down, fill holes on the way up).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import InvalidInput
from ..render import covered_pixels


@dataclass
class Texels:
    """The covered texels of a UV atlas: row, column, face, barycentrics, and the 3D point and normal there."""

    size: int
    rows: np.ndarray
    cols: np.ndarray
    face: np.ndarray
    points: np.ndarray
    normals: np.ndarray


def atlas_texels(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, size: int, normals: np.ndarray,
                 *, chunk: int = 2_000_000) -> Texels:
    """Rasterise every triangle in UV space (texel centres; v runs up as in glTF, rows run down)."""
    size = int(size)
    faces = np.asarray(faces, dtype=np.int64)
    px = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], 1)
    owner = np.full(size * size, -1, dtype=np.int64)
    bary = np.zeros((size * size, 3))
    for fi, x, y, w in covered_pixels(px[faces], size, tolerance=1e-6, chunk=chunk):
        idx = y * size + x
        owner[idx] = fi
        bary[idx] = w
    idx = np.nonzero(owner >= 0)[0]
    f, w = owner[idx], bary[idx]
    corners = faces[f]
    points = (vertices[corners] * w[..., None]).sum(1)
    n = (normals[corners] * w[..., None]).sum(1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return Texels(size, idx // size, idx % size, f, points, n)




def _bilinear(image: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Sample an (H, W, C) image at continuous pixel coordinates (centres at .5), clamped at the border."""
    h, w = image.shape[:2]
    x = np.clip(px[:, 0] - 0.5, 0, w - 1)
    y = np.clip(px[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def project_views(texels: Texels, views: list, images: np.ndarray, depth: np.ndarray, *, sharpness: float = 4.0,
                  depth_tolerance: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Blend the views' colours at every texel: (colour (N, 3), total weight (N,)); weight 0 = seen by none.

    ``images`` is (V, H, W, 3) in [0, 1] and ``depth`` the (V, H, W) depth each view rendered;
    ``depth_tolerance`` is in pixels of that view (a point further behind the visible surface is occluded).
    """
    from scipy import ndimage

    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[0] != len(views) or images.shape[-1] != 3:
        raise InvalidInput(f"views must be a (V, H, W, 3) stack with V = {len(views)}, got shape {images.shape}")
    size = images.shape[1]
    colour = np.zeros((len(texels.points), 3))
    weight = np.zeros(len(texels.points))
    for view, image, zbuf in zip(views, images, depth):
        px, z = view.project(texels.points, size)
        pixel = 2 * view.half_extent / size
        _, _, _, forward = view.axes()
        cos = -(texels.normals @ forward)
        col = np.clip(np.floor(px[:, 0]).astype(np.int64), 0, size - 1)
        row = np.clip(np.floor(px[:, 1]).astype(np.int64), 0, size - 1)
        inside = (px[:, 0] >= 0) & (px[:, 0] < size) & (px[:, 1] >= 0) & (px[:, 1] < size)
        # The nearest surface around the pixel: the minimum over its 3x3 neighbourhood keeps silhouettes honest.
        near = ndimage.minimum_filter(zbuf, size=3, mode="constant", cval=np.inf)[row, col]
        seen = inside & (cos > 0) & (z <= near + depth_tolerance * pixel * (1.0 + 1.0 / np.maximum(cos, 0.05)))
        w = np.where(seen, np.clip(cos, 0, 1) ** sharpness, 0.0)
        if not seen.any():
            continue
        colour[seen] += w[seen, None] * _bilinear(image, px[seen])
        weight += w
    covered = weight > 0
    colour[covered] /= weight[covered, None]
    return colour, weight


def push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the unknown texels of an (H, W, C) image from the known ones: a weighted pyramid, coarse fills fine."""
    image = np.asarray(image, dtype=np.float64)
    w = known.astype(np.float64)
    if w.sum() == 0:
        return image
    if w.all() or min(image.shape[:2]) <= 1:
        return image
    h, wd = image.shape[:2]
    ph, pw = h + h % 2, wd + wd % 2
    img = np.zeros((ph, pw, image.shape[2]))
    wt = np.zeros((ph, pw))
    img[:h, :wd] = image * w[..., None]
    wt[:h, :wd] = w
    # push: 2x2 weighted averages
    s_img = img.reshape(ph // 2, 2, pw // 2, 2, -1).sum((1, 3))
    s_wt = wt.reshape(ph // 2, 2, pw // 2, 2).sum((1, 3))
    coarse = np.where(s_wt[..., None] > 0, s_img / np.maximum(s_wt[..., None], 1e-12), 0.0)
    coarse = push_pull(coarse, s_wt > 0)
    # pull: each unknown texel takes the bilinear upsampling of the coarser level
    ys = (np.arange(h) + 0.5) / 2
    xs = (np.arange(wd) + 0.5) / 2
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    up = _bilinear(coarse, grid).reshape(h, wd, -1)
    return np.where(known[..., None], image, up)


def bake_views(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, normals: np.ndarray, views: list,
               images: np.ndarray, depth: np.ndarray, size: int, *, sharpness: float = 4.0) -> tuple[Image.Image, dict]:
    """The texture atlas painted from the views, and a report (share of texels seen, filled)."""
    texels = atlas_texels(vertices, faces, uv, size, normals)
    colour, weight = project_views(texels, views, images, depth, sharpness=sharpness)
    atlas = np.zeros((size, size, 3))
    known = np.zeros((size, size), dtype=bool)
    seen = weight > 0
    atlas[texels.rows[seen], texels.cols[seen]] = colour[seen]
    known[texels.rows[seen], texels.cols[seen]] = True
    filled = push_pull(atlas, known)
    report = {"texels": int(len(texels.points)), "seen": float(seen.mean()) if len(seen) else 0.0,
              "filled": int((~seen).sum())}
    return Image.fromarray((np.clip(filled, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB"), report


def seam_gaps(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, texture: Image.Image) -> np.ndarray:
    """Colour difference across every UV seam: for each 3D edge whose two faces use different UVs, the mean
    absolute RGB difference (0..1) between the texture sampled along the edge on either side."""
    faces = np.asarray(faces, dtype=np.int64)
    key_v = np.unique(np.round(np.asarray(vertices, dtype=np.float64), 7), axis=0, return_inverse=True)[1].reshape(-1)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    pos_edges = np.sort(key_v[edges], axis=1)
    order = np.lexsort((pos_edges[:, 1], pos_edges[:, 0]))
    se = pos_edges[order]
    same = (se[1:] == se[:-1]).all(1)
    a, b = edges[order][:-1][same], edges[order][1:][same]
    # orient b's UV endpoints to match a's vertex order
    b = np.where((key_v[a[:, 0]] == key_v[b[:, 0]])[:, None], b, b[:, ::-1])
    seam = ~(np.isclose(uv[a], uv[b]).all(axis=(1, 2)))
    a, b = a[seam], b[seam]
    if len(a) == 0:
        return np.zeros(0)
    tex = np.asarray(texture.convert("RGB"), dtype=np.float64) / 255.0
    size = tex.shape[0]
    gaps = []
    for t in (0.25, 0.5, 0.75):
        ua = uv[a[:, 0]] * (1 - t) + uv[a[:, 1]] * t
        ub = uv[b[:, 0]] * (1 - t) + uv[b[:, 1]] * t
        to_px = lambda u: np.stack([u[:, 0] * size, (1 - u[:, 1]) * size], 1)  # noqa: E731
        gaps.append(np.abs(_bilinear(tex, to_px(ua)) - _bilinear(tex, to_px(ub))).mean(1))
    return np.mean(gaps, axis=0)
