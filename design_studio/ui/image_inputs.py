"""Uploaded images are checked before Gradio decodes them, so a bad file gets the studio's message.

Gradio's image and sketch inputs open every upload with Pillow in their ``preprocess`` step, before the
handler runs; a decompression bomb or a corrupt file then surfaces as Gradio's generic "upstream app
raised an exception". ``guard_image_input`` puts the studio's own check (``pipelines.images.open_image``,
the one the CLI and the services use) in front of that step and turns its ``InvalidImage`` into a
``gr.Error`` with the same words the CLI prints.
"""
from __future__ import annotations

import functools

import gradio as gr


def _data_url_bytes(url: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(url.split(",", 1)[1], validate=False)
    except (IndexError, binascii.Error, ValueError):
        return b""


def _uploaded_parts(component, payload) -> list[tuple[str | bytes, str]]:
    """(path or bytes, name) for every image in an image or editor payload.

    An editor payload is a background, layers and a composite, either as files or, when the page sent
    them as blobs first, as bytes held in the component's blob store under ``payload.id``.
    """
    if payload is None:
        return []
    if getattr(payload, "id", None) is not None:
        cached = component.blob_storage.get(payload.id) if hasattr(component, "blob_storage") else None
        if cached is None:
            return []
        blobs = [cached.background, cached.composite, *(cached.layers or [])]
        return [(b, "sketch") for b in blobs if b]
    parts = [getattr(payload, "background", None), getattr(payload, "composite", None),
             *(getattr(payload, "layers", None) or [])]
    parts = [p for p in parts if p is not None]
    if not parts and (getattr(payload, "path", None) or getattr(payload, "url", None)):
        parts = [payload]
    found = []
    for part in parts:
        url = str(getattr(part, "url", "") or "")
        if url.startswith("data:"):  # sent inline as base64; Gradio decodes it the same way
            found.append((_data_url_bytes(url), "uploaded image"))
        elif getattr(part, "path", None):
            found.append((part.path, getattr(part, "orig_name", None) or "uploaded image"))
    return found


def check_uploaded_image(source: str | bytes, *, max_pixels: int, name: str | None = None) -> None:
    """Raise ``gr.Error`` naming the file and the problem unless ``source`` is an image the studio accepts."""
    from pipelines.errors import InvalidImage
    from pipelines.images import open_image

    try:
        open_image(source, max_pixels=max_pixels, name=name)
    except InvalidImage as exc:
        raise gr.Error(str(exc)) from None


def guard_image_input(component, *, max_pixels: int, label: str):
    """Check each uploaded file of ``component`` (``gr.Image``, ``gr.Sketchpad``) before Gradio opens it.

    ``label`` names the input in the message as the services do ("sketch", "starting image").
    """
    inner = component.preprocess

    @functools.wraps(inner)
    def preprocess(payload):
        for source, _name in _uploaded_parts(component, payload):
            check_uploaded_image(source, max_pixels=max_pixels, name=label)
        return inner(payload)

    component.preprocess = preprocess  # Gradio offers no hook before decoding; this instance only
    return component
