"""Offscreen previews with pyrender: a studio-lit thumbnail and a turntable (GIF, or MP4 with imageio-ffmpeg);
and, with a small rasteriser of our own, the position / normal / depth maps multi-view texturing needs.

EGL (Mesa in software on a CPU machine) is chosen before pyrender or OpenGL is imported, unless the
caller already chose a platform through ``PYOPENGL_PLATFORM``.
"""
from __future__ import annotations

import concurrent.futures
import io
import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .errors import InvalidInput

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

BACKDROP = (0.96, 0.95, 0.93, 1.0)
MAX_FRAMES = 360
MAX_SIDE = 2048
TURNTABLE_FPS = 12  # one frame rate for GIF and MP4, so both turn at the same speed


# EGL contexts belong to the thread that made them, and pyrender's ``delete`` terminates the shared
# EGL display, which breaks any other live context. So every GL call runs on one dedicated thread
# and each viewport size keeps one renderer for the life of the process.
_GL_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-gl")
_RENDERERS: dict[int, object] = {}  # size -> pyrender.OffscreenRenderer, touched only on the GL thread


def on_gl_thread(fn, *args, **kwargs):
    """Run ``fn`` on the studio's single GL thread and return its result (exceptions propagate)."""
    return _GL_THREAD.submit(fn, *args, **kwargs).result()


def _renderer(size: int):
    import pyrender

    if size not in _RENDERERS:
        _RENDERERS[size] = pyrender.OffscreenRenderer(size, size)
    return _RENDERERS[size]


def gl_available() -> tuple[bool, str]:
    """(True, "") when an offscreen GL context can be made here, else (False, why)."""
    try:
        on_gl_thread(_renderer, 8)
        return True, ""
    except Exception as exc:  # no EGL/OSMesa library, no device, or a driver refusing the context
        return False, f"no offscreen OpenGL ({os.environ.get('PYOPENGL_PLATFORM')}): {type(exc).__name__}: {exc}"


def _look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye
    return pose


class StudioRenderer:
    """One mesh's scene: key, fill and rim lights, soft backdrop, 3/4 camera (drawn on the shared GL thread)."""

    def __init__(self, mesh, size: int = 256, *, elevation_deg: float = 20.0, fov_deg: float = 35.0):
        import pyrender

        if not 16 <= int(size) <= MAX_SIDE:
            raise InvalidInput(f"preview size must be between 16 and {MAX_SIDE} pixels, got {size}")
        if len(getattr(mesh, "faces", [])) == 0:
            raise InvalidInput("cannot render an empty mesh")
        self.size = int(size)
        centre = mesh.bounds.mean(axis=0)
        radius = float(np.linalg.norm(mesh.extents)) / 2 or 1.0
        self.scene = pyrender.Scene(bg_color=BACKDROP, ambient_light=(0.25, 0.25, 0.25))
        self.node = self.scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=False))
        self.pivot = centre
        distance = radius / math.sin(math.radians(fov_deg) / 2) * 1.05
        elev = math.radians(elevation_deg)
        eye = centre + distance * np.array([0.0, math.sin(elev), math.cos(elev)])
        camera = pyrender.PerspectiveCamera(yfov=math.radians(fov_deg), znear=distance / 50, zfar=distance * 4)
        self.scene.add(camera, pose=_look_at(eye, centre))
        # Studio lighting: warm key from the upper left, cool fill from the right, rim from behind.
        for direction, colour, intensity in [
            ((-1.0, 1.2, 1.0), (1.0, 0.97, 0.92), 3.5),
            ((1.2, 0.4, 0.8), (0.9, 0.95, 1.0), 1.5),
            ((0.0, 0.8, -1.2), (1.0, 1.0, 1.0), 2.0),
        ]:
            light = pyrender.DirectionalLight(color=colour, intensity=intensity)
            self.scene.add(light, pose=_look_at(centre + np.asarray(direction) * distance, centre))

    def frame(self, angle_deg: float = 0.0) -> Image.Image:
        """The object turned ``angle_deg`` about the vertical axis through its centre."""
        a = math.radians(angle_deg)
        rot = np.eye(4)
        rot[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
        to_origin, back = np.eye(4), np.eye(4)
        to_origin[:3, 3], back[:3, 3] = -self.pivot, self.pivot
        self.scene.set_pose(self.node, back @ rot @ to_origin)

        def draw():
            colour, _ = _renderer(self.size).render(self.scene)
            return Image.fromarray(np.ascontiguousarray(colour[..., :3]))

        return on_gl_thread(draw)


def render_thumbnail(mesh, size: int = 256, angle_deg: float = -30.0) -> Image.Image:
    """A 3/4 view of the mesh under studio lighting."""
    return StudioRenderer(mesh, size).frame(angle_deg)


def render_turntable(mesh, frames: int = 24, size: int = 256) -> list[Image.Image]:
    """``frames`` views evenly spaced over one full turn."""
    if isinstance(frames, bool) or not isinstance(frames, int) or not 2 <= frames <= MAX_FRAMES:
        raise InvalidInput(f"turntable frames must be an integer between 2 and {MAX_FRAMES}, got {frames!r}")
    renderer = StudioRenderer(mesh, size)
    return [renderer.frame(360.0 * i / frames) for i in range(frames)]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def gif_bytes(frames: list[Image.Image], fps: int = TURNTABLE_FPS) -> bytes:
    """An endlessly looping GIF; every frame is kept (no dedup) so N views give N frames."""
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps),
                   loop=0, optimize=False, disposal=1)
    return buffer.getvalue()


def mp4_bytes(frames: list[Image.Image], fps: int = TURNTABLE_FPS) -> bytes:
    """H.264 MP4 (yuv420p, fast start: plays in browsers and QuickTime) through imageio-ffmpeg's
    bundled ffmpeg; odd frame sides are padded by one pixel of backdrop, as yuv420p needs even ones."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise InvalidInput("MP4 turntables need the imageio-ffmpeg package; use GIF or install it") from None
    import tempfile

    if not frames:
        raise InvalidInput("an MP4 turntable needs at least one frame, got none")
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 120:
        raise InvalidInput(f"MP4 frame rate must be an integer between 1 and 120, got {fps!r}")
    w, h = frames[0].size
    even = (w + w % 2, h + h % 2)
    backdrop = tuple(int(c * 255) for c in BACKDROP[:3])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "turntable.mp4")
        writer = imageio_ffmpeg.write_frames(
            path, even, fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p", quality=8,
            macro_block_size=1, ffmpeg_log_level="error", output_params=["-movflags", "+faststart"])
        writer.send(None)  # start ffmpeg
        try:
            for frame in frames:
                if frame.size != (w, h):
                    raise InvalidInput(f"MP4 frames must all be {w}x{h}, got one of {frame.size[0]}x{frame.size[1]}")
                canvas = Image.new("RGB", even, backdrop)
                canvas.paste(frame.convert("RGB"), (0, 0))
                writer.send(np.ascontiguousarray(np.asarray(canvas)))
        finally:
            writer.close()
        with open(path, "rb") as fh:
            return fh.read()


# ----------------------------------------------------------------------------- geometry maps (multi-view texturing)
# The six orthographic views MV-Adapter's geometry-guided SDXL adapter was trained on, in its frame
# (z up, object inside the cube [-0.5, 0.5]^3): front, right, back, left at elevation 0, then top and
# bottom. Cameras sit 1.8 from the centre and see the square [-0.55, 0.55]^2.
MV_AZIMUTHS_DEG = (-90.0, 0.0, 90.0, 180.0, 90.0, 90.0)
MV_ELEVATIONS_DEG = (0.0, 0.0, 0.0, 0.0, 89.99, -89.99)
MV_VIEW_NAMES = ("front", "right", "back", "left", "top", "bottom")


@dataclass(frozen=True)
class OrthoView:
    """An orthographic camera looking at the origin from (azimuth, elevation) in a z-up frame."""

    azimuth_deg: float
    elevation_deg: float
    distance: float = 1.8
    half_extent: float = 0.55

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(eye, right, up, forward) unit vectors of the camera (OpenGL convention: it looks along forward)."""
        az, el = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        eye = self.distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        forward = -eye / np.linalg.norm(eye)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        return eye, right, up / np.linalg.norm(up), forward

    def project(self, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (x right, y down, texel centres at .5) and depth along the view of (N, 3) points."""
        eye, right, up, forward = self.axes()
        rel = np.asarray(points, dtype=np.float64) - eye
        x, y, depth = rel @ right, rel @ up, rel @ forward
        px = np.stack([(x / self.half_extent + 1.0) * 0.5 * size, (1.0 - y / self.half_extent) * 0.5 * size], -1)
        return px, depth


def mv_adapter_views() -> list[OrthoView]:
    """MV-Adapter's six views in its order (front, right, back, left, top, bottom)."""
    return [OrthoView(a, e) for a, e in zip(MV_AZIMUTHS_DEG, MV_ELEVATIONS_DEG)]


@dataclass
class ViewFrame:
    """How a glTF-frame mesh (y up, front +z) maps into the views' frame: ``q = scale * R (p - centre)``."""

    centre: np.ndarray
    scale: float
    # glTF (x, y, z) -> view frame (x, -z, y): up becomes +z and the front faces the first (front) camera.
    rotation: np.ndarray = field(default_factory=lambda: np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]))

    @classmethod
    def fit(cls, vertices: np.ndarray, extent: float = 0.5) -> "ViewFrame":
        """Centre the bounding box on the origin and scale so the largest |coordinate| is ``extent``."""
        v = np.asarray(vertices, dtype=np.float64)
        centre = (v.min(0) + v.max(0)) / 2
        reach = float(np.abs(v - centre).max()) or 1.0
        return cls(centre=centre, scale=extent / reach)

    def points(self, p: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(p, dtype=np.float64) - self.centre) @ self.rotation.T

    def directions(self, d: np.ndarray) -> np.ndarray:
        return np.asarray(d, dtype=np.float64) @ self.rotation.T


@dataclass
class GeometryMaps:
    """Per-view rasters: position (view frame, background 0), unit normal (background 0), depth (inf), face id (-1)."""

    position: np.ndarray  # (V, H, W, 3) float32
    normal: np.ndarray  # (V, H, W, 3) float32
    depth: np.ndarray  # (V, H, W) float32
    face: np.ndarray  # (V, H, W) int64
    views: list

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0

    def control_images(self) -> np.ndarray:
        """(V, 6, H, W) in [0, 1]: position + 0.5 then normal / 2 + 0.5 (MV-Adapter's encoding; background 0.5)."""
        pos = np.clip(self.position + 0.5, 0, 1)
        nrm = np.clip(self.normal * 0.5 + 0.5, 0, 1)
        return np.concatenate([pos, nrm], -1).transpose(0, 3, 1, 2).astype(np.float32)

    def images(self) -> tuple[list[Image.Image], list[Image.Image]]:
        """The position and normal maps as RGB pictures (for looking at, and for the design's record)."""
        c = (self.control_images() * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
        return [Image.fromarray(x[..., :3]) for x in c], [Image.fromarray(x[..., 3:]) for x in c]


def stitched_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals with coincident vertices (split at UV seams) sharing one normal."""
    v = np.asarray(vertices, dtype=np.float64)
    _, inverse = np.unique(np.round(v, 7), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    tri = v[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area: area weighting
    acc = np.zeros((inverse.max() + 1, 3))
    for k in range(3):
        np.add.at(acc, inverse[faces[:, k]], face_n)
    n = acc[inverse]
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 1e-20, n / np.maximum(length, 1e-20), np.array([0.0, 0.0, 1.0]))


def rasterize(px: np.ndarray, depth: np.ndarray, faces: np.ndarray, size: int, *, chunk: int = 4_000_000):
    """Z-buffered triangle coverage at pixel centres: (face id (H, W) with -1 for none, barycentrics (H, W, 3)).

    A small CPU rasteriser of our own (numpy): each triangle's bounding box is enumerated, barycentric
    coordinates decide coverage and the nearest depth wins through one ``minimum.at`` on a packed key.
    """
    size = int(size)
    tri = px[faces]
    visible = (tri.max(1) >= 0).all(1) & (tri.min(1) <= size).all(1)
    d_lo, d_hi = float(depth.min()), float(depth.max())
    levels = (1 << 31) - 1
    best = np.full(size * size, np.iinfo(np.int64).max, dtype=np.int64)
    for fi, x, y, w in covered_pixels(tri, size, tolerance=1e-7, chunk=chunk, keep=visible):
        z = (depth[faces[fi]] * w).sum(1)
        zq = np.clip((z - d_lo) / max(d_hi - d_lo, 1e-12) * levels, 0, levels).astype(np.int64)
        np.minimum.at(best, y * size + x, (zq << 32) | fi)
    hit = best != np.iinfo(np.int64).max
    face = np.where(hit, best & 0xFFFFFFFF, -1).reshape(size, size)
    bary = np.zeros((size * size, 3))
    ys, xs = np.nonzero(face >= 0)
    if len(ys):
        bary[ys * size + xs] = barycentric(tri[face[ys, xs]], np.stack([xs + 0.5, ys + 0.5], 1))
    return face, bary.reshape(size, size, 3)


def covered_pixels(tri: np.ndarray, size: int, *, tolerance: float, chunk: int, keep: np.ndarray | None = None):
    """Yield ``(face, x, y, barycentrics)`` for every pixel centre of a ``size``² grid inside a triangle of
    ``tri`` (n, 3, 2) in pixel units, a chunk of about ``chunk`` candidates at a time. Each triangle's
    bounding box is enumerated; ``keep`` (n,) leaves triangles out."""
    lo = np.clip(np.ceil(tri.min(1) - 0.5), 0, size - 1).astype(np.int64)  # first pixel centre inside
    hi = np.clip(np.floor(tri.max(1) - 0.5), 0, size - 1).astype(np.int64)  # last pixel centre inside
    span = np.maximum(hi - lo + 1, 0)  # triangles between pixel centres cover none
    if keep is not None:
        span = np.where(keep[:, None], span, 0)
    counts = span[:, 0] * span[:, 1]
    starts = np.concatenate([[0], np.cumsum(counts)])
    first = 0
    while first < len(tri):
        last = max(int(np.searchsorted(starts, starts[first] + chunk, side="right")) - 1, first + 1)
        sel = np.arange(first, min(last, len(tri)))
        first = int(sel[-1]) + 1
        c = counts[sel]
        if c.sum() == 0:
            continue
        fi = np.repeat(sel, c)
        offset = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
        x = lo[fi, 0] + offset % span[fi, 0]
        y = lo[fi, 1] + offset // span[fi, 0]
        w = barycentric(tri[fi], np.stack([x + 0.5, y + 0.5], 1))
        inside = (w >= -tolerance).all(1)
        if inside.any():
            yield fi[inside], x[inside], y[inside], w[inside]


def barycentric(tri: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Barycentric weights of points ``p`` (n, 2) in triangles ``tri`` (n, 3, 2); -1 where a triangle is degenerate."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    w = np.stack([1.0 - l1 - l2, l1, l2], 1)
    return np.where(ok[:, None], w, -1.0)


def render_geometry_maps(vertices: np.ndarray, faces: np.ndarray, views: list[OrthoView], size: int) -> GeometryMaps:
    """Position, normal and depth maps of a mesh already in the views' frame (see ``ViewFrame``)."""
    if not 8 <= int(size) <= MAX_SIDE:
        raise InvalidInput(f"geometry map size must be between 8 and {MAX_SIDE} pixels, got {size}")
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        raise InvalidInput("cannot render geometry maps of an empty mesh")
    v = np.asarray(vertices, dtype=np.float64)
    normals = stitched_vertex_normals(v, faces)
    out = {k: [] for k in ("position", "normal", "depth", "face")}
    for view in views:
        px, depth = view.project(v, size)
        face, bary = rasterize(px, depth, faces, size)
        hit = face >= 0
        f = np.where(hit, face, 0)
        corners = faces[f]  # (H, W, 3)
        pos = (v[corners] * bary[..., None]).sum(2)
        nrm = (normals[corners] * bary[..., None]).sum(2)
        nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
        dep = (depth[corners] * bary).sum(2)
        out["position"].append(np.where(hit[..., None], pos, 0.0).astype(np.float32))
        out["normal"].append(np.where(hit[..., None], nrm, 0.0).astype(np.float32))
        out["depth"].append(np.where(hit, dep, np.inf).astype(np.float32))
        out["face"].append(face)
    return GeometryMaps(**{k: np.stack(x) for k, x in out.items()}, views=list(views))
