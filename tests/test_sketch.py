"""Sketch -> clean lines -> image: scans, dark pages, drawn layers, and the sketch really steering the image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipelines.errors import InvalidImage, InvalidInput
from pipelines.sketch import compose_layers, sketch_to_lines


def paper_scan(size=(320, 240), dark_page=False) -> Image.Image:
    """A pencil bag outline on paper lit from one side (a phone photo of a sketch)."""
    w, h = size
    shade = np.linspace(235, 160, w)[None, :].repeat(h, 0)  # uneven lighting across the page
    page = Image.fromarray(shade.astype(np.uint8), "L").convert("RGB")
    d = ImageDraw.Draw(page)
    d.rounded_rectangle((60, 80, 260, 210), radius=18, outline=(40, 40, 40), width=4)
    d.arc((110, 20, 210, 130), 180, 360, fill=(40, 40, 40), width=4)
    if dark_page:
        page = Image.fromarray(255 - np.asarray(page))
    return page


def test_scan_with_uneven_light_becomes_clean_lines():
    lines = sketch_to_lines(paper_scan())
    control = np.asarray(lines.control.convert("L"))
    assert set(np.unique(control)) <= {0, 255}
    assert 0.01 < lines.ink < 0.2 and not lines.inverted and lines.mode == "lines"
    assert control[140, 60] == 255 and control[140, 160] == 0  # the bag's side is a line, its middle is not
    assert control[10, 300] == 0  # the dark right-hand side of the page is not mistaken for ink
    assert np.array_equal(np.asarray(lines.paper.convert("L")), 255 - control)


def test_white_lines_on_a_dark_page_are_inverted():
    lines = sketch_to_lines(paper_scan(dark_page=True))
    assert lines.inverted and 0.01 < lines.ink < 0.2
    assert np.asarray(lines.control.convert("L"))[140, 60] == 255


def test_empty_and_oversized_sketches_are_refused():
    with pytest.raises(InvalidInput, match="sketch is empty"):
        sketch_to_lines(Image.new("RGB", (200, 200), "white"))
    with pytest.raises(InvalidImage, match="over the limit"):
        sketch_to_lines(Image.new("L", (300, 300), 255), max_pixels=200 * 200)
    with pytest.raises(InvalidInput, match="sketch is empty"):
        compose_layers({"background": None, "layers": [], "composite": None}, max_pixels=10**6)


def drawn_value(size=(256, 256)) -> dict:
    """What the Gradio sketchpad sends: an RGBA stroke layer on a transparent canvas, no background."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse((50, 50, 200, 210), outline=(0, 0, 0, 255), width=6)
    return {"background": None, "layers": [layer], "composite": layer.copy()}


def test_drawn_layers_are_flattened_on_white():
    picture = compose_layers(drawn_value(), max_pixels=10**6)
    lines = sketch_to_lines(picture)
    assert not lines.inverted and 0.01 < lines.ink < 0.2


def test_uploaded_sketch_to_image_uses_the_sketch_model(studio, tmp_path):
    from pipelines.concept import read_png_metadata

    path = tmp_path / "scan.png"
    paper_scan().save(path)
    designs = studio.generate_concepts("a top-handle bag", n=2, seed=4, sketch=path, strength=0.9)
    assert len(designs) == 2
    meta = read_png_metadata(studio.store.file_path(designs[0]))
    assert meta["mode"] == "sketch" and meta["sketch_backend"] == "controlnet"
    assert meta["sketch_model"] == "design-studio/tiny-controlnet-scribble" and meta["strength"] == 0.9
    # the clean line image is kept, content-addressed, so the design can be refined later
    with Image.open(studio.store.files.path(meta["sketch_file"])) as kept:
        assert kept.size == (320, 240)
    plain = studio.generate_concepts("a top-handle bag", n=1, seed=4)
    other = tmp_path / "other.png"
    Image.fromarray(255 - np.asarray(paper_scan().transpose(Image.Transpose.FLIP_TOP_BOTTOM))).save(other)
    flipped = studio.generate_concepts("a top-handle bag", n=1, seed=4, sketch=other, strength=0.9)

    def px(d):
        with Image.open(studio.store.file_path(d)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.int16)

    assert np.abs(px(designs[0]) - px(plain[0])).mean() > 1.0, "the sketch did not change the image"
    assert np.abs(px(designs[0]) - px(flipped[0])).mean() > 0.2, "a different sketch gave the same image"


def test_drawn_sketch_to_image(studio):
    designs = studio.generate_concepts("a round clutch", n=1, seed=2, sketch=drawn_value())
    assert designs[0].params["mode"] == "sketch" and designs[0].params["strength"] == 0.8
    with Image.open(studio.store.file_path(designs[0])) as img:
        assert img.size == (64, 64)
