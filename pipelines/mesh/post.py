"""Post-processing as small composable steps: clean, decimate, unwrap, bake, orient, scale, material.

Every step is a plain function on a ``trimesh.Trimesh`` (or arrays) so a caller can reorder or skip
steps; ``finish`` runs the usual chain and records the seconds each stage took.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import InvalidInput

ColourFn = Callable[[np.ndarray], np.ndarray]  # (N, 3) points -> (N, 3) RGB in [0, 1]


@dataclass(frozen=True)
class MaterialPreset:
    """PBR defaults for a material family (glTF metallic-roughness)."""

    name: str
    roughness: float
    metallic: float
    double_sided: bool = False


MATERIALS: dict[str, MaterialPreset] = {
    "leather": MaterialPreset("leather", roughness=0.55, metallic=0.0),
    "canvas": MaterialPreset("canvas", roughness=0.9, metallic=0.0),
    "metal": MaterialPreset("metal", roughness=0.25, metallic=1.0),
    "silk": MaterialPreset("silk", roughness=0.35, metallic=0.0, double_sided=True),
}


# ----------------------------------------------------------------------------- timing
class StageTimer:
    """Seconds per named stage, summed when a stage runs more than once."""

    def __init__(self, timings: dict | None = None):
        self.timings = timings if timings is not None else {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


# ----------------------------------------------------------------------------- cleanup
def remove_degenerate_faces(mesh, *, area_eps: float = 1e-14):
    """Drop zero-area and duplicate faces, merge coincident vertices, drop unused ones."""
    mesh.merge_vertices()
    faces = mesh.faces
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    keep &= mesh.area_faces > area_eps
    mesh.update_faces(keep)
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    return mesh


def remove_floaters(mesh, *, min_share: float = 0.05):
    """Keep connected parts with at least ``min_share`` of the largest part's faces (drops specks)."""
    import trimesh

    if len(mesh.faces) == 0:
        return mesh
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    counts = np.bincount(labels)
    keep_labels = np.nonzero(counts >= min_share * counts.max())[0]
    mesh.update_faces(np.isin(labels, keep_labels))
    mesh.remove_unreferenced_vertices()
    return mesh


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Closed loops of boundary edges (edges used by one face), in face winding order."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    n = int(faces.max()) + 1
    key = edges[:, 0] * n + edges[:, 1]
    rkey = np.sort(edges[:, 1] * n + edges[:, 0])
    pos = np.clip(np.searchsorted(rkey, key), 0, len(rkey) - 1)
    boundary = edges[rkey[pos] != key]
    nxt = {}
    for a, b in boundary:
        nxt.setdefault(int(a), []).append(int(b))
    loops, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen and v in nxt:
            seen.add(v)
            loop.append(v)
            v = nxt[v][0]
        if v == start and len(loop) >= 3:
            loops.append(np.array(loop))
    return loops


def fill_small_holes(mesh, *, max_edges: int = 64) -> int:
    """Close boundary loops of up to ``max_edges`` edges with a fan around their centroid; returns how many."""
    import trimesh

    if len(mesh.faces) == 0:
        return 0
    loops = [loop for loop in boundary_loops(mesh.faces) if len(loop) <= max_edges]
    if not loops:
        return 0
    vertices, faces = [mesh.vertices], [mesh.faces]
    n = len(mesh.vertices)
    for loop in loops:
        centre = n
        vertices.append(mesh.vertices[loop].mean(axis=0, keepdims=True))
        n += 1
        # The boundary runs a->b in the existing faces, so the patch runs b->a to stay consistent.
        faces.append(np.stack([np.roll(loop, -1), loop, np.full(len(loop), centre)], 1))
    filled = trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)
    mesh.vertices, mesh.faces = filled.vertices, filled.faces
    return len(loops)


def cleanup(mesh, *, hole_edges: int = 64) -> dict:
    """Degenerate faces, floaters, small holes; returns what was done."""
    before = len(mesh.faces)
    remove_degenerate_faces(mesh)
    remove_floaters(mesh)
    removed = before - len(mesh.faces)
    holes = fill_small_holes(mesh, max_edges=hole_edges)
    return {"faces_removed": int(removed), "holes_filled": int(holes)}


# ----------------------------------------------------------------------------- decimate
def decimate(mesh, face_budget: int):
    """Quadric decimation (fast_simplification) down to at most ``face_budget`` faces."""
    import fast_simplification
    import trimesh

    if face_budget < 4:
        raise InvalidInput(f"face budget must be at least 4, got {face_budget}")
    for _ in range(4):
        n = len(mesh.faces)
        if n <= face_budget:
            break
        reduction = min(0.999, 1.0 - face_budget / n * 0.98)
        points, faces = fast_simplification.simplify(
            np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.faces, dtype=np.int32), target_reduction=reduction
        )
        mesh = trimesh.Trimesh(points, faces, process=False)
    if len(mesh.faces) > face_budget:  # last resort on tiny budgets: drop the smallest faces
        order = np.argsort(-mesh.area_faces)[:face_budget]
        mask = np.zeros(len(mesh.faces), bool)
        mask[order] = True
        mesh.update_faces(mask)
        mesh.remove_unreferenced_vertices()
    return mesh


# ----------------------------------------------------------------------------- UV + bake
def unwrap_uv(mesh, *, resolution: int = 1024, padding: int = 2, refine: int = 0):
    """xatlas chart packing; returns (vertices, faces, uv) with seams split into separate vertices.

    ``refine`` is xatlas' chart-growing iterations: 0 (one pass) was 2.6x faster than its default of
    1 on a 20k-face mesh for about a quarter more charts; unwrapping is the slow step otherwise.
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(mesh.vertices, dtype=np.float32), np.asarray(mesh.faces, dtype=np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = int(padding)
    pack.bilinear = True
    chart = xatlas.ChartOptions()
    chart.max_iterations = int(refine)
    atlas.generate(chart_options=chart, pack_options=pack)
    vmapping, indices, uvs = atlas[0]
    return np.asarray(mesh.vertices)[vmapping], indices.astype(np.int64), uvs.astype(np.float64)


def bake_texture(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, colour_fn: ColourFn, size: int,
                 *, per_vertex: bool = False, chunk: int = 2_000_000) -> Image.Image:
    """Rasterise every triangle in UV space, colour its texels, pad the seams.

    ``per_vertex=False`` asks ``colour_fn`` for every texel's 3D point (sharpest; right for image
    projection and neural colour fields); ``True`` asks once per vertex and blends across each
    triangle (the cheap way to bake dense vertex colours).
    """
    from scipy import ndimage

    vertex_colours = np.clip(np.asarray(colour_fn(vertices), dtype=np.float32), 0, 1) if per_vertex else None

    size = int(size)
    texture = np.zeros((size, size, 3), dtype=np.float32)
    filled = np.zeros((size, size), dtype=bool)
    # Texel centres; v runs up in glTF/OpenGL, rows run down in the image.
    px = np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], 1)
    tri = px[faces]
    lo = np.clip(np.floor(tri.min(1)), 0, size - 1).astype(np.int64)
    hi = np.clip(np.ceil(tri.max(1)), 0, size - 1).astype(np.int64)
    span = hi - lo + 1
    counts = span[:, 0] * span[:, 1]
    starts = np.concatenate([[0], np.cumsum(counts)])
    # Process faces in groups so the candidate-texel arrays stay bounded.
    group_start = 0
    while group_start < len(faces):
        group_end = int(np.searchsorted(starts, starts[group_start] + chunk, side="right")) - 1
        group_end = max(group_end, group_start + 1)
        sel = np.arange(group_start, min(group_end, len(faces)))
        group_start = sel[-1] + 1
        c = counts[sel]
        fi = np.repeat(sel, c)
        offset = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
        x = lo[fi, 0] + offset % span[fi, 0]
        y = lo[fi, 1] + offset // span[fi, 0]
        a, b, cc = tri[fi, 0], tri[fi, 1], tri[fi, 2]
        v0, v1 = b - a, cc - a
        v2 = np.stack([x, y], 1) - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        ok = np.abs(den) > 1e-12
        den = np.where(ok, den, 1.0)
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        l0 = 1.0 - l1 - l2
        inside = ok & (l0 >= -1e-4) & (l1 >= -1e-4) & (l2 >= -1e-4)
        if not inside.any():
            continue
        f = faces[fi[inside]]
        w = np.stack([l0[inside], l1[inside], l2[inside]], 1)[..., None].astype(np.float32)
        if per_vertex:
            colours = (vertex_colours[f] * w).sum(1)
        else:
            points = (vertices[f] * w).sum(1)
            colours = np.clip(np.asarray(colour_fn(points), dtype=np.float32), 0.0, 1.0)
        texture[y[inside], x[inside]] = colours
        filled[y[inside], x[inside]] = True
    if filled.any() and not filled.all():
        # Pad charts outward (every empty texel takes its nearest filled one) so mipmaps do not bleed.
        _, (iy, ix) = ndimage.distance_transform_edt(~filled, return_indices=True)
        texture = texture[iy, ix]
    return Image.fromarray((texture * 255 + 0.5).astype(np.uint8), "RGB")


def vertex_colour_fn(vertices: np.ndarray, colours: np.ndarray, k: int = 4) -> ColourFn:
    """Colour of a point: inverse-distance blend of the nearest ``k`` coloured vertices."""
    from scipy.spatial import cKDTree

    tree = cKDTree(vertices)
    colours = np.asarray(colours, dtype=np.float32)
    if colours.max() > 1.0:
        colours = colours / 255.0
    k = min(k, len(vertices))

    def colour(points: np.ndarray) -> np.ndarray:
        dist, idx = tree.query(points, k=k)
        if k == 1:
            return colours[idx]
        w = 1.0 / np.maximum(dist, 1e-9)
        return (colours[idx] * w[..., None]).sum(1) / w.sum(1, keepdims=True)

    return colour


# ----------------------------------------------------------------------------- frame + size
_AXES = {"x": 0, "y": 1, "z": 2}


def orient(mesh, *, up: str = "y", front: str = "+z"):
    """Rotate from a backend's frame (``up`` axis, ``front`` direction) to glTF's: +Y up, front +Z."""
    def axis(spec: str) -> np.ndarray:
        sign = -1.0 if spec.startswith("-") else 1.0
        vec = np.zeros(3)
        vec[_AXES[spec.lstrip("+-")]] = sign
        return vec

    u, f = axis(up), axis(front)
    if abs(float(u @ f)) > 0.5:
        raise InvalidInput(f"up axis {up!r} and front {front!r} must be different axes")
    r = np.stack([np.cross(u, f), u, f])  # rows: where source axes go -> target x, y, z
    transform = np.eye(4)
    transform[:3, :3] = r
    mesh.apply_transform(transform)
    return mesh


def scale_to_size(mesh, size_m: float, *, on_ground: bool = True):
    """Largest extent = ``size_m`` metres, centred on x/z, resting on y=0 (or centred)."""
    extent = float(mesh.extents.max()) if len(mesh.vertices) else 0.0
    if extent <= 0:
        raise InvalidInput("the reconstructed mesh is empty or flat; nothing to scale")
    centre = mesh.bounds.mean(axis=0)
    if on_ground:
        centre[1] = mesh.bounds[0, 1]
    mesh.apply_translation(-centre)
    mesh.apply_scale(size_m / extent)
    return mesh


def apply_material(vertices, faces, uv, texture: Image.Image, preset: str):
    """A trimesh with UVs and a glTF PBR material of the chosen preset."""
    import trimesh
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    if preset not in MATERIALS:
        raise InvalidInput(f"material {preset!r} is not one of {', '.join(MATERIALS)}")
    p = MATERIALS[preset]
    material = PBRMaterial(
        name=p.name, baseColorTexture=texture, roughnessFactor=p.roughness, metallicFactor=p.metallic,
        doubleSided=p.double_sided,
    )
    return trimesh.Trimesh(vertices=vertices, faces=faces, visual=TextureVisuals(uv=uv, material=material), process=False)


# ----------------------------------------------------------------------------- the chain
def finish(mesh, colour_fn: ColourFn, options, *, up: str = "y", front: str = "+z", timer: StageTimer | None = None,
           per_vertex: bool = False):
    """Raw backend geometry -> clean, decimated, UV-mapped, textured mesh at real size; returns (mesh, report).

    Degenerate faces go first; floaters and holes are handled after decimation, where the mesh is
    small and cheap to walk (decimation never creates floaters).
    """
    timer = timer or StageTimer()
    if len(mesh.faces) == 0:
        raise InvalidInput("the backend produced an empty mesh (no surface in its field); try another backend or seed")
    with timer.stage("cleanup"):
        before = len(mesh.faces)
        remove_degenerate_faces(mesh)
    with timer.stage("decimate"):
        mesh = decimate(mesh, int(options.face_budget))
    with timer.stage("cleanup"):
        remove_floaters(mesh)
        holes = fill_small_holes(mesh)
        if len(mesh.faces) > options.face_budget:  # hole patches may add a few faces back
            mesh = decimate(mesh, int(options.face_budget))
        report = {"faces_in": int(before), "holes_filled": int(holes)}
    with timer.stage("uv"):
        vertices, faces, uv = unwrap_uv(mesh, resolution=int(options.texture_size))
    with timer.stage("bake"):
        texture = bake_texture(vertices, faces, uv, colour_fn, int(options.texture_size), per_vertex=per_vertex)
    with timer.stage("orient"):
        out = apply_material(vertices, faces, uv, texture, options.material)
        orient(out, up=up, front=front)
        scale_to_size(out, float(options.size_m))
    # Watertightness is judged on the geometry without UV seams (seams split vertices, not the surface).
    report.update(watertight=bool(mesh.is_watertight), faces=int(len(faces)), vertices=int(len(vertices)))
    return out, report
