"""Surface extraction from a signed field: dense or coarse-to-fine grid queries, then scikit-image marching cubes.

The coarse-to-fine path queries a coarse grid, marks the cells whose corners change sign (plus one
cell around them), and queries only the fine points inside those cells; elsewhere the fine grid keeps
the trilinear upsampling of the coarse values, whose sign is already right away from the surface.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

#: Largest grid queried densely in one go; finer grids are reached by doubling from here.
DENSE_LIMIT = 128


def grid_points(n: int, bound: float, device) -> "torch.Tensor":
    import torch

    axis = torch.linspace(-bound, bound, n, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def query_chunks(sdf_fn: Callable, points, chunk: int):
    import torch

    return torch.cat([sdf_fn(points[start : start + chunk]) for start in range(0, len(points), chunk)])


def sdf_grid(sdf_fn: Callable, resolution: int, bound: float, *, device="cpu", chunk: int = 65536,
             dense_limit: int = DENSE_LIMIT) -> tuple[np.ndarray, int]:
    """Values of ``sdf_fn`` on a (resolution+1)^3 grid over [-bound, bound]^3; returns (grid, points queried)."""
    from torch.nn import functional as F

    # Grid sizes 2^k * base + 1 so each doubling lands every coarse point on a fine one.
    cells = int(resolution)
    levels = 0
    while cells > dense_limit and cells % 2 == 0:
        cells //= 2
        levels += 1
    n = cells + 1
    values = query_chunks(sdf_fn, grid_points(n, bound, device), chunk).reshape(n, n, n).float()
    queried = n**3
    for _ in range(levels):
        inside = (values > 0).float()[None, None]
        # A cell holds surface when its 8 corners disagree; dilate by one cell for safety.
        any_in = F.max_pool3d(inside, 2, stride=1)
        all_in = -F.max_pool3d(-inside, 2, stride=1)
        surface = F.max_pool3d((any_in - all_in), 3, stride=1, padding=1)
        fine_n = 2 * n - 1
        fine = F.interpolate(values[None, None], size=(fine_n,) * 3, mode="trilinear", align_corners=True)[0, 0]
        # Fine points of a surface cell i are 2i, 2i+1, 2i+2 on each axis.
        up = surface.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
        mask = F.max_pool3d(F.pad(up, (1, 1, 1, 1, 1, 1)), 2, stride=1)[0, 0] > 0
        index = mask.nonzero()
        if len(index):
            points = index.float() / (fine_n - 1) * (2 * bound) - bound
            fine[index[:, 0], index[:, 1], index[:, 2]] = query_chunks(sdf_fn, points, chunk).float()
            queried += len(index)
        values, n = fine, fine_n
    return values.cpu().numpy(), queried


def marching_cubes(values: np.ndarray, bound: float):
    """Zero level set of an inside-positive grid spanning [-bound, bound]^3, closed at the box border."""
    from ..lrm import marching_cubes_field

    return marching_cubes_field(values, 0.0, -bound, bound)
