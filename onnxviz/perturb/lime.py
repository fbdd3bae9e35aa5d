"""LIME perturbation samples: superpixels switched on or off by a binary matrix.

Ribeiro, Singh & Guestrin, "Why Should I Trust You?", KDD 2016, sec. 3.3
(https://arxiv.org/abs/1602.04938). Row ``i`` of the sample matrix says which superpixels sample
``i`` keeps; row 0 keeps all of them (the unperturbed image). A sample is one gather
``keep[i][segments]`` choosing between the image and the fill, per pixel.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel


def sample_matrix(num_samples: int, num_segments: int, seed: int) -> np.ndarray:
    """The (num_samples, num_segments) uint8 matrix of kept superpixels; row 0 is all ones.

    Each entry is an independent fair coin, as in lime's ``LimeImageExplainer.data_labels``,
    drawn from ``numpy.random.default_rng(seed)`` so that ``seed`` fixes the samples.
    """
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, size=(int(num_samples), int(num_segments)), dtype=np.uint8)
    z[0] = 1
    return z


@kernel
def lime_batch(x0, fill, segments, keep, start, out, channels_last):
    """Write samples ``start .. start + len(out) - 1`` into ``out``: ``x0`` where kept, else ``fill``.

    Args:
        x0: the image, (C, H, W) or (H, W, C) float32 (preprocessing already applied).
        fill: what a hidden superpixel shows, same layout as ``x0``.
        segments: int (H, W) superpixel labels, 0 .. S - 1.
        keep: uint8 (num_samples, S) sample matrix (see :func:`sample_matrix`).
        start: index of the first sample to write.
        out: caller-owned buffer (n, *x0.shape), overwritten.
        channels_last: ``x0`` is (H, W, C).
    """
    H, W = segments.shape
    for j in prange(out.shape[0]):
        row = keep[start + j]
        o = out[j]
        if channels_last:
            C = x0.shape[2]
            for y in range(H):
                for x in range(W):
                    src = x0 if row[segments[y, x]] else fill
                    for c in range(C):
                        o[y, x, c] = src[y, x, c]
        else:
            C = x0.shape[0]
            for c in range(C):
                for y in range(H):
                    for x in range(W):
                        o[c, y, x] = x0[c, y, x] if row[segments[y, x]] else fill[c, y, x]
