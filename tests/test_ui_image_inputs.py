"""A decompression bomb or a broken file sent as a sketch or a starting image gets the same clear
message in the page as at the command line, before Gradio decodes it."""
from __future__ import annotations

import io
import struct
import zlib

import gradio as gr
import pytest
from gov_helpers import cli_env
from gradio.components.image_editor import EditorData
from gradio.data_classes import FileData, ImageData
from PIL import Image

from design_studio.cli import main


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int = 30_000) -> bytes:
    """A 300-byte PNG that declares 30 000 x 30 000 pixels (900 megapixels once decoded)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def ok_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, models_dir):
    from design_studio.app import create
    from design_studio.settings import Settings

    root = tmp_path_factory.mktemp("ui-images")
    settings = Settings(data_dir=root / "data", models_dir=models_dir, profile="tiny", device="cpu",
                        key_dir=root / "keys")
    _, demo = create(settings)
    return demo


def _component(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _cli_message(tmp_path, monkeypatch, capsys, flag, path):
    from design_studio.settings import Settings

    settings = Settings(data_dir=tmp_path / "cli", models_dir=tmp_path / "none", key_dir=tmp_path / "keys")
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    assert main(["generate", "a bag", "-n", "1", flag, str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    return err.removeprefix("studio: error: ")


def test_a_bomb_sketch_gets_the_cli_message(demo, tmp_path, monkeypatch, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    expected = _cli_message(tmp_path, monkeypatch, capsys, "--sketch", bomb)
    assert "too many pixels" in expected
    sketch = _component(demo, "sketch")
    payload = EditorData(background=FileData(path=str(bomb), orig_name="scan.png"), layers=[],
                         composite=FileData(path=str(bomb), orig_name="scan.png"))
    with pytest.raises(gr.Error) as refused:
        sketch.preprocess(payload)
    assert refused.value.message == expected


def test_a_bomb_starting_image_gets_the_cli_message(demo, tmp_path, monkeypatch, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    expected = _cli_message(tmp_path, monkeypatch, capsys, "--init-image", bomb)
    init_image = _component(demo, "init-image")
    with pytest.raises(gr.Error) as refused:
        init_image.preprocess(ImageData(path=str(bomb), orig_name="photo.png"))
    assert refused.value.message == expected


@pytest.mark.parametrize("data, words", [(b"not an image at all", "not a readable image"),
                                         (ok_png()[:60], "corrupt or truncated")])
def test_broken_uploads_are_named_not_generic(demo, tmp_path, data, words):
    path = tmp_path / "broken.png"
    path.write_bytes(data)
    with pytest.raises(gr.Error, match=words):
        _component(demo, "init-image").preprocess(ImageData(path=str(path), orig_name="broken.png"))
    with pytest.raises(gr.Error, match=f"'sketch': {words}"):
        _component(demo, "sketch").preprocess(EditorData(composite=FileData(path=str(path)), layers=[]))


def test_a_bomb_sent_inline_or_as_blobs_is_caught_too(demo):
    import base64

    url = "data:image/png;base64," + base64.b64encode(bomb_png()).decode()
    with pytest.raises(gr.Error, match="too many pixels"):
        _component(demo, "init-image").preprocess(ImageData(url=url))
    from gradio.components.image_editor import EditorDataBlobs

    sketch = _component(demo, "sketch")
    sketch.blob_storage["blob-1"] = EditorDataBlobs(background=bomb_png(), layers=[], composite=None)
    with pytest.raises(gr.Error, match="too many pixels"):
        sketch.preprocess(EditorData(id="blob-1"))


def test_a_good_sketch_still_passes(demo, tmp_path):
    path = tmp_path / "sketch.png"
    path.write_bytes(ok_png())
    value = _component(demo, "sketch").preprocess(EditorData(background=FileData(path=str(path)), layers=[],
                                                             composite=FileData(path=str(path))))
    assert value["composite"].size == (64, 64)
