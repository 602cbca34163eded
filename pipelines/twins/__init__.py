"""Random-weight twins in the PUBLISHED layouts of catalogued models: same classes and config keys, only smaller.

``TWINS`` maps a published repository id to a builder ``build(directory, seed=0) -> Path``.
"""
from __future__ import annotations

from .triposg import TRIPOSG_REPO, TRIPOSG_SCRIBBLE_REPO, build_triposg_scribble_twin, build_triposg_twin

TWINS = {
    TRIPOSG_REPO: build_triposg_twin,
    TRIPOSG_SCRIBBLE_REPO: build_triposg_scribble_twin,
}
