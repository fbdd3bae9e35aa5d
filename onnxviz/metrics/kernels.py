"""Numba kernels of the faithfulness metrics: pure functions of arrays, no I/O.

``ordered_batch`` writes the samples of a deletion or insertion curve; ``imputation_system``
assembles the sparse linear system of ROAD's noisy linear imputation. Both work on one sample in
the kernels' layout, (C, H, W) or (H, W, C), as :mod:`onnxviz.perturb` does.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..perturb._jit import kernel


@kernel
def ordered_batch(source, target, order, counts, start, out, channels_last):
    """Samples ``start .. start + len(out) - 1`` of a pixel-ordering curve.

    Sample ``i`` is ``source`` with its first ``counts[i]`` pixels of ``order`` taken from
    ``target`` (deletion: source = image, target = fill; insertion: the other way round).

    Args:
        source: (C, H, W) or (H, W, C) float32, the sample at step 0.
        target: the same shape: where replaced pixels come from.
        order: int64 (H * W,) flat pixel indices, most important first.
        counts: int64 (steps + 1,) pixels replaced at each step, non-decreasing.
        start: index of the first sample to write.
        out: caller-owned buffer (n, *source.shape), overwritten.
        channels_last: the samples are (H, W, C).
    """
    A, B, D = source.shape
    W = B if channels_last else D
    for j in prange(out.shape[0]):
        i = start + j
        for a in range(A):
            for b in range(B):
                for d in range(D):
                    out[j, a, b, d] = source[a, b, d]
        for q in range(counts[i]):
            p = order[q]
            y, x = p // W, p % W
            if channels_last:
                for c in range(D):
                    out[j, y, x, c] = target[y, x, c]
            else:
                for c in range(A):
                    out[j, c, y, x] = target[c, y, x]


#: Neighbour offsets and weights of the linear imputation (Rong et al. 2022, sec. 4): the four
#: direct neighbours weigh 1/6 each, the four diagonal ones 1/12 (they sum to 1).
OFFSETS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)],
                   np.int64)
WEIGHTS = np.array([1 / 12, 1 / 6, 1 / 12, 1 / 6, 1 / 6, 1 / 12, 1 / 6, 1 / 12], np.float64)


@njit(nogil=True, cache=True)
def imputation_system(x, removed, channels_last, offsets, weights):
    """The sparse system whose solution fills ``removed`` pixels from their neighbours.

    Each removed pixel's value is the weighted mean of its neighbours inside the image (removed
    neighbours are unknowns too): ``sum_n w_n * v_i - sum_{n removed} w_n v_n =
    sum_{n kept} w_n x_n``, one equation per removed pixel and channel-independent weights.

    Args:
        x: (C, H, W) or (H, W, C) float32 sample.
        removed: bool (H, W), True where a pixel is imputed.
        channels_last: ``x`` is (H, W, C).
        offsets, weights: :data:`OFFSETS`, :data:`WEIGHTS`.

    Returns:
        ``(rows, cols, vals, rhs, pixels)``: the matrix in COO form (n x n), the right-hand
        sides (n, C) float64 and the flat indices (n,) of the removed pixels in row order.
    """
    H, W = removed.shape
    C = x.shape[2] if channels_last else x.shape[0]
    var = np.full(H * W, -1, np.int64)
    n = 0
    for p in range(H * W):
        if removed[p // W, p % W]:
            var[p] = n
            n += 1
    pixels = np.empty(n, np.int64)
    rows = np.empty(n * 9, np.int64)
    cols = np.empty(n * 9, np.int64)
    vals = np.empty(n * 9, np.float64)
    rhs = np.zeros((n, C), np.float64)
    k = 0
    for p in range(H * W):
        i = var[p]
        if i < 0:
            continue
        pixels[i] = p
        y, xx = p // W, p % W
        total = 0.0
        for t in range(offsets.shape[0]):
            ny, nx = y + offsets[t, 0], xx + offsets[t, 1]
            if ny < 0 or nx < 0 or ny >= H or nx >= W:
                continue
            w = weights[t]
            total += w
            j = var[ny * W + nx]
            if j >= 0:
                rows[k], cols[k], vals[k] = i, j, -w
                k += 1
            else:
                for c in range(C):
                    rhs[i, c] += w * (x[ny, nx, c] if channels_last else x[c, ny, nx])
        rows[k], cols[k], vals[k] = i, i, total
        k += 1
    return rows[:k], cols[:k], vals[:k], rhs, pixels
