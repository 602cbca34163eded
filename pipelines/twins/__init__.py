"""Random-weight twins in the PUBLISHED layouts of catalogued models: same classes and config keys, only smaller.

``TWINS`` maps a published repository id to a builder ``build(directory, seed=0) -> Path``.
"""
from __future__ import annotations

from .triposg import build_triposg_scribble_twin, build_triposg_twin

TWINS = {
    "VAST-AI/TripoSG": build_triposg_twin,
    "VAST-AI/TripoSG-scribble": build_triposg_scribble_twin,
}
