"""The parallel builds of the kernels (used on >= 8 cores) write exactly what the default ones do."""

import numpy as np
import pytest
from numba import njit

from onnxviz.perturb import (
    blend_batch, lime_batch, mask_params, occlusion_batch, patch_grid, rise_masks, sample_matrix,
    weighted_mask_sum,
)


def parallel(kernel):
    return njit(nogil=True, parallel=True)(kernel.py_func)


@pytest.mark.slow
def test_parallel_builds_match():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 12, 10)).astype(np.float32)
    base = rng.standard_normal((3, 12, 10)).astype(np.float32)
    rects, _ = patch_grid((12, 10), 4, 3, "center")
    seg = rng.integers(0, 6, (12, 10))
    keep = sample_matrix(9, 6, 0)
    grids, shifts, cell = mask_params(9, 3, 0.5, (12, 10), 0)

    def both(kernel, make_out, args):
        a, b = make_out(), make_out()
        kernel(*args(a))
        parallel(kernel)(*args(b))
        np.testing.assert_array_equal(a, b)
        return a

    out = lambda: np.zeros((7, 3, 12, 10), np.float32)
    both(occlusion_batch, out, lambda o: (x0, base, rects, 2, o, False))
    both(lime_batch, out, lambda o: (x0, base, seg, keep, 2, o, False))
    masks = both(rise_masks, lambda: np.zeros((7, 12, 10), np.float32),
                 lambda o: (grids, shifts, cell, 2, o))
    both(blend_batch, out, lambda o: (x0, base, masks, o, False))
    both(weighted_mask_sum, lambda: np.zeros((12, 10)), lambda o: (o, masks, np.arange(7.0)))
