"""Image -> textured 3D mesh: backends behind one interface, plus export.

``get_backend(name, ...)`` returns a backend; every backend's ``reconstruct`` takes a PIL image and
``MeshOptions`` and returns a textured, UV-mapped ``trimesh.Trimesh`` in metres.
"""
from .base import MeshBackend, MeshOptions, MeshResult, check_options
from .export import export_glb, load_mesh_bytes

__all__ = ["MeshBackend", "MeshOptions", "MeshResult", "check_options", "export_glb", "load_mesh_bytes"]
