"""Random-weight twins of catalogued models in their published layouts, keyed by repository id."""
from __future__ import annotations

from .mv_adapter import REPO_ID as MV_ADAPTER_REPO, build_mv_adapter

#: repo id -> builder(directory, seed=0) writing that repository's files.
TWINS = {MV_ADAPTER_REPO: build_mv_adapter}
