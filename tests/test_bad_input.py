"""Bad input gets a clear error before any model work, and nothing is written."""
from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from design_studio.errors import InvalidRequest, ModelMissing, NotFound

from helpers import snapshot_files


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "prompt is empty"),
        (dict(prompt="   "), "prompt is empty"),
        (dict(prompt="x" * 1001), "limit is 1000"),
        (dict(prompt="bag", steps=0), "steps must be between 1 and 150"),
        (dict(prompt="bag", steps=10_000), "steps must be between 1 and 150"),
        (dict(prompt="bag", width=65), "width must be a multiple of 8"),
        (dict(prompt="bag", height=100_000), "height must be between"),
        (dict(prompt="bag", guidance=math.nan), "guidance must be a finite number"),
        (dict(prompt="bag", guidance=math.inf), "guidance must be a finite number"),
        (dict(prompt="bag", guidance=-1.0), "guidance must be between"),
        (dict(prompt="bag", n=0), "number of images must be between"),
        (dict(prompt="bag", seed=-5), "seed must be between"),
    ],
)
def test_bad_generation_parameters(studio, kwargs, message):
    before = snapshot_files(studio.settings.files_dir)
    prompt = kwargs.pop("prompt")
    with pytest.raises(InvalidRequest, match=message):
        studio.generate_concepts(prompt, **kwargs)
    assert snapshot_files(studio.settings.files_dir) == before
    assert studio.store.designs() == []
    assert studio.models.loaded("concept") is None  # rejected before any model was loaded


def png_bytes(size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "tan").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is not an image", "not a readable image"),
        (png_bytes()[:60], "corrupt or truncated"),
        (b"GIF89a" + b"\x00" * 40, "not a readable image"),
    ],
)
def test_bad_uploads(studio, data, message):
    with pytest.raises(InvalidRequest, match=message):
        studio.import_image(data, name="upload.png")
    assert studio.store.designs() == []
    assert snapshot_files(studio.settings.files_dir) == {}


def test_oversized_image_is_refused(studio, settings):
    settings.max_image_pixels = 100 * 100
    with pytest.raises(InvalidRequest, match="over the limit of 10000 pixels"):
        studio.import_image(png_bytes((200, 200)), name="big.png")
    assert studio.store.designs() == []


def test_decompression_bomb_is_an_error(studio):
    Image.MAX_IMAGE_PIXELS, old = 1000, Image.MAX_IMAGE_PIXELS
    try:
        with pytest.raises(InvalidRequest, match="too many pixels|over the limit"):
            studio.import_image(png_bytes((40, 40)), name="bomb.png")
    finally:
        Image.MAX_IMAGE_PIXELS = old


def test_mesh_of_missing_or_wrong_design(studio):
    with pytest.raises(NotFound):
        studio.make_mesh(999)
    image = studio.import_image(png_bytes(), name="ok.png")
    with pytest.raises(InvalidRequest, match="size_m must be between"):
        studio.make_mesh(image.id, size_cm=-3)
    assert [d.id for d in studio.store.designs()] == [image.id]


def test_standard_profile_without_weights_names_the_missing_model(tmp_path):
    from design_studio.services import Studio
    from design_studio.settings import Settings

    studio = Studio(Settings(data_dir=tmp_path / "d", models_dir=tmp_path / "empty", profile="standard", device="cpu"))
    missing = [st for st in studio.model_status() if not st.available]
    assert {st.entry.repo_id for st in missing} >= {"stabilityai/stable-diffusion-xl-base-1.0"}
    with pytest.raises(ModelMissing, match="stable-diffusion-xl-base-1.0.*not on this machine"):
        studio.generate_concepts("a bag", n=1)
