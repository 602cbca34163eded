"""Offscreen previews: a studio-lit thumbnail and a turntable of N distinct frames."""
from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh
from PIL import Image

from pipelines import render
from pipelines.errors import InvalidInput

GL_OK, GL_WHY = render.gl_available()
needs_gl = pytest.mark.skipif(not GL_OK, reason=f"no offscreen OpenGL here (CI installs Mesa EGL): {GL_WHY}")


def textured_box():
    from pipelines.mesh.post import apply_material

    box = trimesh.creation.box(extents=(0.3, 0.2, 0.1))
    rng = np.random.default_rng(0)
    uv = rng.random((len(box.vertices), 2))
    texture = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    return apply_material(box.vertices, box.faces, uv, texture, "leather")


@needs_gl
def test_thumbnail_shows_the_object_on_the_backdrop():
    image = render.render_thumbnail(textured_box(), size=96)
    pixels = np.asarray(image)
    assert image.size == (96, 96)
    backdrop = np.array(render.BACKDROP[:3]) * 255
    differs = np.abs(pixels.astype(float) - backdrop).max(-1) > 12
    assert 0.05 < differs.mean() < 0.95  # an object in frame, with backdrop around it
    assert differs[48, 48] and not differs[1, 1]


@needs_gl
def test_turntable_has_n_distinct_frames_and_gif_keeps_them():
    frames = render.render_turntable(textured_box(), frames=6, size=64)
    assert len(frames) == 6
    assert len({f.tobytes() for f in frames}) == 6
    with Image.open(io.BytesIO(render.gif_bytes(frames))) as gif:
        assert gif.n_frames == 6


def test_bad_render_requests_are_refused():
    with pytest.raises(InvalidInput, match="frames"):
        render.render_turntable(textured_box(), frames=1)
    with pytest.raises(InvalidInput, match="empty mesh"):
        render.render_thumbnail(trimesh.Trimesh())
