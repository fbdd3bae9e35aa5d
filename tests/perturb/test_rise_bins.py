"""D-RISE's saliency sums on the coarse grid (bin_grids + upsample_bins) equal the weighted sum
of the upsampled masks themselves (rise_masks + weighted_mask_sum), whatever the batching."""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.perturb import (bin_grids, blend_batch, mask_params, rise_blend, rise_masks,
                             upsample_bins, weighted_mask_sum)


@pytest.mark.parametrize("size, cells", [((96, 96), 16), ((101, 77), 7), ((40, 64), 3)])
def test_binned_sums_equal_the_masks_sums(size, cells):
    n, k = 150, 3
    grids, shifts, cell = mask_params(n, cells, 0.5, size, 3)
    masks = np.empty((n + 1, *size), np.float32)
    rise_masks(grids, shifts, cell, 0, masks)
    w = np.random.default_rng(0).normal(size=(n + 1, k))
    want = np.zeros((k, *size))
    for t in range(k):  # mask 0 (the image itself) is left out, as D-RISE leaves it
        weighted_mask_sum(want[t], masks[1:], w[1:, t].copy())
    maps = []
    for batch in (1, 32, n + 1):
        acc = np.zeros((k, int(cell[0] * cell[1]), cells, cells))
        for s in range(0, n + 1, batch):
            bin_grids(acc, grids, shifts, cell, s, np.ascontiguousarray(w[s:s + batch]))
        out = np.zeros((k, *size))
        upsample_bins(acc, cell, out)
        # the masks are float32 in rise_masks, exact here: a rounding apart
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-6 * np.abs(want).max())
        maps.append(out)
    assert all(np.array_equal(maps[0], m) for m in maps[1:])  # not a bit changes with batching


@pytest.mark.parametrize("channels_last", [False, True])
def test_rise_blend_is_rise_masks_then_blend_bit_for_bit(channels_last):
    size, n = (37, 52), 20
    grids, shifts, cell = mask_params(n, 5, 0.5, size, 1)
    rng = np.random.default_rng(2)
    shape = (*size, 3) if channels_last else (3, *size)
    x0 = rng.normal(size=shape).astype(np.float32)
    base = rng.normal(size=shape).astype(np.float32)
    masks = np.empty((8, *size), np.float32)
    want = np.empty((8, *shape), np.float32)
    got = np.empty_like(want)
    for start in (0, 8, 13):  # the first batch holds mask 0, the image itself
        rise_masks(grids, shifts, cell, start, masks)
        blend_batch(x0, base, masks, want, channels_last)
        rise_blend(grids, shifts, cell, start, x0, base, got, channels_last)
        assert np.array_equal(got, want)
