"""Mesh export: bytes out, bytes in; only callers touch files."""
from __future__ import annotations

import io


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
