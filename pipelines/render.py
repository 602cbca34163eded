"""Offscreen previews with pyrender: a studio-lit thumbnail and a turntable (GIF, or MP4 with imageio-ffmpeg).

EGL (Mesa in software on a CPU machine) is chosen before pyrender or OpenGL is imported, unless the
caller already chose a platform through ``PYOPENGL_PLATFORM``.
"""
from __future__ import annotations

import concurrent.futures
import io
import math
import os

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
