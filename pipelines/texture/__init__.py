"""Texturing a mesh all round: MV-Adapter views from geometry maps, back-projected into the UV atlas."""
from .backproject import bake_views, push_pull, seam_gaps
from .paint import PaintOptions, paint_mesh

__all__ = ["PaintOptions", "bake_views", "paint_mesh", "push_pull", "seam_gaps"]
