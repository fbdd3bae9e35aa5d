"""Numba batch generators for the perturbation explainers, and the streaming pipeline.

Every kernel is a pure function of arrays (randomness comes in as arrays drawn from a seed),
compiled with ``njit(nogil=True, cache=True)``, writing into a caller-owned batch buffer.
Sample 0 of every perturbation set is the unperturbed image.
"""

from .aggregate import lime_kernel, occlusion_heatmap, weighted_mask_sum, weighted_ridge
from .fill import baseline, parse_fill
from .lime import lime_batch, sample_matrix
from .occlusion import EDGES, occlusion_batch, patch_grid
from .rise import (bin_grids, blend_batch, mask_params, rise_blend, rise_masks,
                   upsample_bins)
from .segment import grid_segments, relabel, segment
from .stream import stream

__all__ = [
    "EDGES",
    "baseline",
    "blend_batch",
    "lime_batch",
    "lime_kernel",
    "mask_params",
    "occlusion_batch",
    "occlusion_heatmap",
    "grid_segments",
    "relabel",
    "segment",
    "parse_fill",
    "patch_grid",
    "rise_masks",
    "rise_blend",
    "bin_grids",
    "upsample_bins",
    "sample_matrix",
    "stream",
    "weighted_mask_sum",
    "weighted_ridge",
]
