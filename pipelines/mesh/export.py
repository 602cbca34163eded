"""Mesh export: bytes out, bytes in; only callers touch files.

``EXPORTERS`` maps each format to a function ``(mesh, name) -> {filename: bytes}``; ``export(mesh,
fmt, name)`` looks the format up there. The ZIP bundle (which also carries provenance) is built by
``export_zip`` from the same exporters.
"""
from __future__ import annotations

import io
from pathlib import Path

from ..errors import InvalidInput


def export_glb(mesh) -> bytes:
    """A binary glTF 2.0 (GLB) of a textured trimesh, PBR material included."""
    data = mesh.export(file_type="glb")
    if not data:
        raise ValueError("trimesh produced an empty GLB")
    return data


def load_mesh_bytes(data: bytes, file_type: str = "glb"):
    """Load GLB/OBJ bytes back into one trimesh (scenes with one geometry are unwrapped)."""
    import trimesh

    loaded = trimesh.load(io.BytesIO(data), file_type=file_type, process=False)
    if isinstance(loaded, trimesh.Scene):
        geoms = list(loaded.geometry.values())
        if len(geoms) == 1:
            return geoms[0]
        return loaded.to_mesh()
    return loaded


def export_obj(mesh, name: str = "model") -> dict[str, bytes]:
    """OBJ + MTL + PNG texture as ``{filename: bytes}`` (the OBJ names its MTL, the MTL its PNG)."""
    from trimesh.exchange.obj import export_obj as _export

    text, files = _export(mesh, include_normals=True, include_texture=True, return_texture=True,
                          mtl_name=f"{name}.mtl", write_texture=True)
    out = {f"{name}.obj": text.encode("utf-8")}
    mtl = files.pop(f"{name}.mtl", b"").decode("utf-8")
    images = [k for k in files if k.lower().endswith((".png", ".jpg", ".jpeg"))]
    for i, image in enumerate(images):
        # Name textures after the model (trimesh names them after the material), so bundles can share a folder.
        renamed = f"{name}{'' if i == 0 else f'-{i}'}{Path(image).suffix}"
        mtl = mtl.replace(f" {image}", f" {renamed}")
        out[renamed] = files.pop(image)
    out[f"{name}.mtl"] = mtl.encode("utf-8")
    out.update(files)
    return out


def _glb_files(mesh, name: str = "model") -> dict[str, bytes]:
    return {f"{name}.glb": export_glb(mesh)}


def _usdz_files(mesh, name: str = "model") -> dict[str, bytes]:
    from .usdz import export_usdz

    return {f"{name}.usdz": export_usdz(mesh, name)}


#: Format -> exporter ``(mesh, name) -> {filename: bytes}``; the first file named ``name.<format>``
#: is the main one, any others (OBJ's MTL and PNG) travel beside it.
EXPORTERS = {
    "glb": _glb_files,
    "obj": export_obj,
    "usdz": _usdz_files,
}


def export(mesh, fmt: str, name: str = "model") -> dict[str, bytes]:
    """``{filename: bytes}`` of ``mesh`` in format ``fmt`` (one of ``EXPORTERS``)."""
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise InvalidInput(f"export format {fmt!r} is not one of {', '.join(EXPORTERS)}")
    return exporter(mesh, name)


#: Where signatures go: brand_guard fills ``signature`` later; the ZIP already carries the slot.
PROVENANCE_NAME = "provenance.json"


def export_zip(mesh, provenance: dict, name: str = "model", sign=None) -> bytes:
    """One ZIP: ``name.glb``, ``name.obj/.mtl/.png`` and ``provenance.json`` (params + file hashes).

    ``sign`` (hook for the brand guard): a callable taking the provenance bytes and returning a
    signature string, stored as ``provenance.sig`` next to it.
    """
    import hashlib
    import json
    import zipfile

    files = export(mesh, "glb", name)
    files.update(export(mesh, "obj", name))
    record = dict(provenance)
    record["files"] = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}
    record.setdefault("signature", None)
    files[PROVENANCE_NAME] = json.dumps(record, indent=2, sort_keys=True, default=str).encode("utf-8")
    if sign is not None:
        files["provenance.sig"] = str(sign(files[PROVENANCE_NAME])).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for fname, data in files.items():
            # A fixed timestamp keeps the archive byte-identical for identical inputs.
            info = zipfile.ZipInfo(fname, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buffer.getvalue()


def load_obj_files(files: dict[str, bytes]):
    """Load an OBJ bundle (as written by ``export_obj``) back into a textured trimesh."""
    import tempfile
    from pathlib import Path

    import trimesh

    with tempfile.TemporaryDirectory() as tmp:
        for fname, data in files.items():
            (Path(tmp) / fname).write_bytes(data)
        obj = next(f for f in files if f.endswith(".obj"))
        loaded = trimesh.load(Path(tmp) / obj, process=False, force="mesh")
        image = getattr(loaded.visual.material, "image", None)
        if image is not None:
            image.load()  # read the PNG before its temporary folder goes away
        return loaded
