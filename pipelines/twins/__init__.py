"""Random-weight twins of every catalogued model, in the published repositories' layouts.

A twin has the published repository's file names, folder layout, config keys and model classes,
only with small widths and depths, so the studio's real loaders and pipelines run on it on a CPU in
seconds. ``build(root, profile)`` writes one twin per repository under ``root/<repo id>/`` (a local
mirror that ``studio models pull --source`` can read); ``python -m pipelines.twins build DIR
--profile standard|quality|all`` does the same from the command line.

``BUILDERS`` maps a repository id to the function writing its twin (one module per model family);
``PROFILE_REPOS`` lists the repositories of each profile and must match the catalogue's non-tiny entries
and the base models they run on (a test checks it, since this package may not import the application).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .depth import DEPTH_REPO, build_depth_anything_small
from .flux import FLUX_SCHNELL_REPO, build_flux_schnell
from .mv_adapter import REPO_ID as MV_ADAPTER_REPO, build_mv_adapter
from .sdxl import SCRIBBLE_REPO, SDXL_REPO, build_scribble_controlnet, build_sdxl
from .shap_e import SHAP_E_IMG2IMG_REPO, SHAP_E_REPO, build_shap_e, build_shap_e_img2img
from .triposg import TRIPOSG_REPO, TRIPOSG_SCRIBBLE_REPO, build_triposg_scribble_twin, build_triposg_twin
from .triposr import TRIPOSR_REPO, build_triposr

#: repository id -> builder(directory, seed) writing that repository's twin into ``directory``.
BUILDERS: dict[str, Callable[[Path, int], None]] = {
    SDXL_REPO: build_sdxl,
    SCRIBBLE_REPO: build_scribble_controlnet,
    FLUX_SCHNELL_REPO: build_flux_schnell,
    DEPTH_REPO: build_depth_anything_small,
    TRIPOSR_REPO: build_triposr,
    SHAP_E_REPO: build_shap_e,
    SHAP_E_IMG2IMG_REPO: build_shap_e_img2img,
    TRIPOSG_REPO: build_triposg_twin,
    TRIPOSG_SCRIBBLE_REPO: build_triposg_scribble_twin,
    MV_ADAPTER_REPO: build_mv_adapter,  # shaped for the SDXL twin beside it: built after SDXL_REPO
}

_MESH_REPOS = (TRIPOSR_REPO, SHAP_E_IMG2IMG_REPO, SHAP_E_REPO, TRIPOSG_REPO, TRIPOSG_SCRIBBLE_REPO)

#: The repositories each real profile uses (the catalogue's entries, tiny and restricted ones aside).
PROFILE_REPOS: dict[str, tuple[str, ...]] = {
    "standard": (SDXL_REPO, SCRIBBLE_REPO, DEPTH_REPO, *_MESH_REPOS, MV_ADAPTER_REPO),
    # MV-Adapter runs on SDXL even where the concept model is FLUX
    "quality": (FLUX_SCHNELL_REPO, DEPTH_REPO, *_MESH_REPOS, SDXL_REPO, MV_ADAPTER_REPO),
}
PROFILES = (*PROFILE_REPOS, "all")


@dataclass
class TwinReport:
    """One twin written: where, how many bytes, how long the build took."""

    repo_id: str
    path: Path
    bytes: int
    seconds: float


def repos_for(profile: str) -> list[str]:
    """Repository ids of ``profile`` ('all': every profile's, each once), in build order."""
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    names = PROFILE_REPOS.values() if profile == "all" else [PROFILE_REPOS[profile]]
    out: list[str] = []
    for repos in names:
        out += [r for r in repos if r not in out]
    return out


def build(root: str | Path, profile: str = "all", *, seed: int = 0,
          on_built: Callable[[TwinReport], None] | None = None) -> list[TwinReport]:
    """Write the twins of ``profile`` under ``root/<repo id>/``; a twin already there is rebuilt."""
    from ._common import folder_bytes

    root = Path(root)
    reports = []
    for repo_id in repos_for(profile):
        if repo_id not in BUILDERS:
            raise KeyError(f"no twin builder for {repo_id!r}; add one to pipelines.twins.BUILDERS")
        start = time.perf_counter()
        target = root / repo_id
        BUILDERS[repo_id](target, seed)
        report = TwinReport(repo_id, target, folder_bytes(target), time.perf_counter() - start)
        reports.append(report)
        if on_built:
            on_built(report)
    return reports


__all__ = ["BUILDERS", "PROFILE_REPOS", "PROFILES", "TwinReport", "build", "repos_for"]
