"""Quad remesh for CAD / CLO handoff: Instant Meshes (BSD-3, via pynanoinstantmeshes), then a fresh
xatlas unwrap and a texture re-baked from the original textured mesh.

A ``QuadMesh`` keeps quads and any leftover triangles apart. glTF (GLB) holds triangles only, so
``QuadMesh.triangulated()`` gives a trimesh whose first ``2 * len(quads)`` faces are the quads split
along their first diagonal, in order; ``quads_from_triangles`` recovers the quads from such a mesh,
and ``export_quad_obj`` writes OBJ with real 4-sided faces.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import InvalidInput

REMESHER = "Instant Meshes (pynanoinstantmeshes)"
MIN_FACES = 16
MAX_FACES = 2_000_000


@dataclass
class QuadMesh:
    """Vertices (split at UV seams), quads (Q, 4) and triangles (T, 3) indexing them, per-vertex UVs,
    the baked texture and the glTF PBR preset name."""

    vertices: np.ndarray
    quads: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray
    texture: Image.Image
    material: str
    report: dict = field(default_factory=dict)

    def triangulated(self):
        """A textured trimesh: quads first, each as (a, b, c) + (a, c, d), then the triangles."""
        from .post import apply_material

        faces = np.concatenate([split_quads(self.quads), self.triangles.reshape(-1, 3)]).astype(np.int64)
        return apply_material(self.vertices, faces, self.uv, self.texture, self.material)


def split_quads(quads: np.ndarray) -> np.ndarray:
    quads = np.asarray(quads, dtype=np.int64).reshape(-1, 4)
    return np.stack([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], 1).reshape(-1, 3)


def quads_from_triangles(faces: np.ndarray, n_quads: int) -> tuple[np.ndarray, np.ndarray]:
    """(quads, triangles) from faces laid out as ``QuadMesh.triangulated`` writes them."""
    faces = np.asarray(faces, dtype=np.int64)
    n_quads = int(n_quads)
    if not 0 <= 2 * n_quads <= len(faces):
        raise InvalidInput(f"quad count {n_quads} does not fit a mesh of {len(faces)} triangles")
    pairs = faces[: 2 * n_quads].reshape(-1, 2, 3)
    a, b = pairs[:, 0], pairs[:, 1]
    if not (np.array_equal(a[:, 0], b[:, 0]) and np.array_equal(a[:, 2], b[:, 1])):
        raise InvalidInput("the first faces of this mesh are not quad pairs (a, b, c) + (a, c, d)")
    quads = np.stack([a[:, 0], a[:, 1], a[:, 2], b[:, 2]], 1)
    return quads, faces[2 * n_quads:]


@contextlib.contextmanager
def _quiet_native_output():
    """Instant Meshes prints its progress from C++ to stdout; keep it out of the CLI's output.

    File descriptor 1 is process-wide: other threads' stdout is dropped for the second or so the
    remesher runs (logging goes to stderr and is unaffected)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real file descriptor (e.g. captured streams): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def surface_colour_fn(mesh, samples: int = 200_000, k: int = 4, seed: int = 0):
    """Colour of a point = the textured mesh's colour at its nearest surface samples (closest-point
    transfer; dense samples stand in for an exact closest-point query)."""
    from scipy.spatial import cKDTree

    uv = getattr(mesh.visual, "uv", None)
    material = getattr(mesh.visual, "material", None)
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    if uv is None or image is None:
        raise InvalidInput("quad remesh needs a textured, UV-mapped mesh to carry the texture over")
    rng = np.random.default_rng(seed)
    faces = np.asarray(mesh.faces)
    areas = mesh.area_faces
    chosen = rng.choice(len(faces), size=int(samples), p=areas / areas.sum())
    r = rng.random((int(samples), 2))
    flip = r.sum(1) > 1
    r[flip] = 1 - r[flip]
    bary = np.stack([1 - r.sum(1), r[:, 0], r[:, 1]], 1)
    tri = faces[chosen]
    points = (np.asarray(mesh.vertices)[tri] * bary[..., None]).sum(1)
    sample_uv = (np.asarray(uv)[tri] * bary[..., None]).sum(1)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    h, w = pixels.shape[:2]
    x = np.clip((sample_uv[:, 0] % 1.0) * w, 0, w - 1).astype(np.int64)
    y = np.clip((1.0 - sample_uv[:, 1] % 1.0) * h, 0, h - 1).astype(np.int64)
    colours = pixels[y, x]
    tree = cKDTree(points)

    def colour(query: np.ndarray) -> np.ndarray:
        dist, idx = tree.query(query, k=k, workers=-1)
        weights = 1.0 / np.maximum(dist, 1e-9)
        return (colours[idx] * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)

    return colour


def _unwrap_polygons(vertices: np.ndarray, quads: np.ndarray, triangles: np.ndarray, resolution: int):
    """xatlas over the quads split in two plus the triangles; a quad stays a quad when both halves
    land in one chart with a shared diagonal, else its halves become two triangles.
    Returns (vertices, quads, triangles, uv)."""
    import xatlas

    halves = split_quads(quads)
    tris = np.concatenate([halves, np.asarray(triangles, dtype=np.int64).reshape(-1, 3)])
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(vertices, dtype=np.float32), tris.astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = 2
    pack.bilinear = True
    chart = xatlas.ChartOptions()
    chart.max_iterations = 0
    atlas.generate(chart_options=chart, pack_options=pack)
    vmapping, indices, uvs = atlas[0]
    indices = indices.astype(np.int64)
    quads_out, split = quads_from_pairs(indices[: len(halves)])
    tris_out = np.concatenate([split, indices[len(halves):]]).reshape(-1, 3)
    return np.asarray(vertices)[vmapping], quads_out, tris_out, uvs.astype(np.float64)


def quads_from_pairs(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rejoin (a, b, c) + (a, c, d) pairs into quads where both halves share the diagonal's vertices."""
    pairs = indices.reshape(-1, 2, 3)
    a, b = pairs[:, 0], pairs[:, 1]
    joined = (a[:, 0] == b[:, 0]) & (a[:, 2] == b[:, 1])
    quads = np.stack([a[joined, 0], a[joined, 1], a[joined, 2], b[joined, 2]], 1)
    tris = pairs[~joined].reshape(-1, 3)
    return quads, tris


def _fit_bounds(points: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Scale and shift remeshed points so their largest extent, x/z centre and lowest y match the
    original's (the remesher's vertices sit slightly inside the input surface; the size is a spec)."""
    lo, hi = points.min(0), points.max(0)
    extent = float((hi - lo).max())
    if extent <= 0:
        return points
    points = (points - lo) * (float((bounds[1] - bounds[0]).max()) / extent)
    lo, hi = points.min(0), points.max(0)
    target_centre, centre = (bounds[0] + bounds[1]) / 2, (lo + hi) / 2
    shift = target_centre - centre
    shift[1] = bounds[0, 1] - lo[1]
    return points + shift


def quad_remesh(mesh, *, target_faces: int, texture_size: int, material: str, seed: int = 0) -> QuadMesh:
    """A quad-dominant copy of a textured trimesh with about ``target_faces`` quads, re-unwrapped and
    re-baked; same place and size as the input."""
    import trimesh

    try:
        import pynanoinstantmeshes
    except ImportError:
        raise InvalidInput("quad remesh needs the pynanoinstantmeshes package (pip install pynanoinstantmeshes)") from None
    if isinstance(target_faces, bool) or not isinstance(target_faces, (int, np.integer)) \
            or not MIN_FACES <= int(target_faces) <= MAX_FACES:
        raise InvalidInput(f"quad face target must be an integer between {MIN_FACES} and {MAX_FACES}, got {target_faces!r}")
    if len(getattr(mesh, "faces", [])) == 0:
        raise InvalidInput("cannot remesh an empty mesh")
    colour_fn = surface_colour_fn(mesh, seed=seed)
    # UV seams split vertices; the remesher needs the connected surface, so weld them first.
    welded = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=True)
    # Instant Meshes extracts about vertex_count faces, then splits each into four for a pure quad mesh.
    vertex_count = max(int(target_faces) // 4, 4)
    with _quiet_native_output():
        points, faces = pynanoinstantmeshes.remesh(
            np.ascontiguousarray(welded.vertices, dtype=np.float32), np.ascontiguousarray(welded.faces, dtype=np.uint32),
            vertex_count, deterministic=True)
    points = _fit_bounds(np.asarray(points, dtype=np.float64), np.asarray(mesh.bounds, dtype=np.float64))
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        raise InvalidInput("the remesher returned no faces; try a larger face target")
    # A 4-sided face with a repeated corner is a triangle in disguise.
    distinct = np.array([len(set(f)) for f in faces.tolist()])
    quads = faces[distinct == 4]
    triangles = np.array([list(dict.fromkeys(f)) for f in faces[distinct == 3].tolist()], dtype=np.int64).reshape(-1, 3)
    vertices, quads_uv, tris_uv, uv = _unwrap_polygons(points, quads, triangles, texture_size)
    from .post import bake_texture

    all_faces = np.concatenate([split_quads(quads_uv), tris_uv.reshape(-1, 3)])
    texture = bake_texture(vertices, all_faces, uv, colour_fn, int(texture_size))
    report = {"remesher": REMESHER, "faces_in": int(len(mesh.faces)), "quads": int(len(quads_uv)),
              "triangles": int(len(tris_uv)), "vertices": int(len(vertices)),
              "quad_share": float(len(quads_uv) / max(len(quads_uv) + len(tris_uv), 1))}
    return QuadMesh(vertices, quads_uv, tris_uv.reshape(-1, 3), uv, texture, material, report)


def export_quad_obj(vertices: np.ndarray, uv: np.ndarray, quads: np.ndarray, triangles: np.ndarray,
                    texture: Image.Image, name: str = "model", *, roughness: float | None = None,
                    metallic: float | None = None) -> dict[str, bytes]:
    """OBJ (4-sided ``f`` lines for quads) + MTL + PNG as ``{filename: bytes}``."""
    import io

    lines = [f"# {len(quads)} quads, {len(triangles)} triangles", f"mtllib {name}.mtl", f"o {name}"]
    lines += [f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in np.asarray(vertices, dtype=np.float64)]
    lines += [f"vt {u:.7g} {v:.7g}" for u, v in np.asarray(uv, dtype=np.float64)]
    lines.append(f"usemtl {name}")
    for face in np.asarray(quads, dtype=np.int64).tolist() + np.asarray(triangles, dtype=np.int64).tolist():
        lines.append("f " + " ".join(f"{i + 1}/{i + 1}" for i in face))
    mtl = [f"newmtl {name}", "Ka 1 1 1", "Kd 1 1 1", "Ks 0 0 0", "d 1", "illum 1", f"map_Kd {name}.png"]
    if roughness is not None:
        mtl.append(f"Pr {roughness:.4g}")
    if metallic is not None:
        mtl.append(f"Pm {metallic:.4g}")
    buffer = io.BytesIO()
    texture.convert("RGB").save(buffer, format="PNG")
    return {f"{name}.obj": ("\n".join(lines) + "\n").encode("utf-8"), f"{name}.mtl": ("\n".join(mtl) + "\n").encode("utf-8"),
            f"{name}.png": buffer.getvalue()}


def quad_obj_from_mesh(mesh, quads: int, name: str = "model") -> dict[str, bytes]:
    """OBJ with 4-sided faces from a triangulated quad mesh (``QuadMesh.triangulated`` layout)."""
    quad_faces, tri_faces = quads_from_triangles(mesh.faces, quads)
    material = getattr(mesh.visual, "material", None)
    texture = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    if texture is None or getattr(mesh.visual, "uv", None) is None:
        raise InvalidInput("a quad OBJ needs a textured, UV-mapped mesh")
    return export_quad_obj(mesh.vertices, mesh.visual.uv, quad_faces, tri_faces, texture, name,
                           roughness=getattr(material, "roughnessFactor", None),
                           metallic=getattr(material, "metallicFactor", None))
