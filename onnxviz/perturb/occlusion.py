"""Occlusion sensitivity batches: a sliding patch of baseline pasted over the image.

Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, sec. 4.2
(https://arxiv.org/abs/1311.2901). A perturbation set has ``1 + len(rects)`` samples: sample 0 is
the unperturbed image, sample ``i >= 1`` has ``rects[i - 1]`` replaced by the baseline.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..errors import OptionError
from ._jit import kernel

#: How patches meet the border: ``"truncate"`` starts patches at 0, s, 2s, ... until the image is
#: covered, cutting the last one at the border (Captum's ``Occlusion``: ``ceil((D - p) / s) + 1``
#: positions); ``"center"`` centres a patch on every stride point and clips it on both sides
#: (MATLAB's ``occlusionSensitivity``: 224 x 224 positions at stride 1).
EDGES = ("truncate", "center")


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise OptionError(f"{what} must be an int or a pair (h, w), got {value!r}") from None
    if h < 1 or w < 1:
        raise OptionError(f"{what} must be >= 1, got {value!r}")
    return h, w


def _starts(size: int, patch: int, stride: int, edges: str) -> np.ndarray:
    if edges == "truncate":
        patch = min(patch, size)  # a patch larger than the image hides all of it
        return np.arange(0, -(-(size - patch) // stride) + 1, dtype=np.int64) * stride
    return np.arange(0, size, stride, dtype=np.int64) - patch // 2


def patch_grid(size, patch, stride, edges: str = "truncate") -> tuple[np.ndarray, tuple[int, int]]:
    """The occluding rectangles, row-major over the grid of patch positions.

    Args:
        size: image (H, W).
        patch: patch side or (h, w).
        stride: step between patch positions, an int or (h, w).
        edges: one of :data:`EDGES`.

    A patch larger than the image is cut to it (MATLAB and Captum refuse it; a default patch
    must work on a 28 x 28 digit too).

    Returns:
        ``(rects, (rows, cols))``: ``rects`` is int64 (rows * cols, 4) of ``(y0, x0, y1, x1)``,
        already clipped to the image, and ``(rows, cols)`` the shape of the position grid.
    """
    if edges not in EDGES:
        raise OptionError(f"edges must be one of {', '.join(EDGES)}, got {edges!r}")
    (ph, pw), (sh, sw) = _pair(patch, "patch"), _pair(stride, "stride")
    H, W = int(size[0]), int(size[1])
    ys, xs = _starts(H, ph, sh, edges), _starts(W, pw, sw, edges)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    rects = np.stack([yy, xx, yy + ph, xx + pw], axis=-1).reshape(-1, 4)
    rects[:, 0::2] = np.clip(rects[:, 0::2], 0, H)
    rects[:, 1::2] = np.clip(rects[:, 1::2], 0, W)
    return np.ascontiguousarray(rects), (len(ys), len(xs))


@kernel
def occlusion_batch(x0, base, rects, start, out, channels_last):
    """Write samples ``start .. start + len(out) - 1`` of an occlusion set into ``out``.

    Args:
        x0: the image, (C, H, W) or (H, W, C) float32 (any per-pixel affine preprocessing
            already applied: it commutes with pasting).
        base: the baseline in the same layout as ``x0``.
        rects: int64 (P, 4) rectangles ``(y0, x0, y1, x1)``.
        start: index of the first sample to write (0 = the unperturbed image).
        out: caller-owned buffer (n, *x0.shape), overwritten.
        channels_last: ``x0`` is (H, W, C).
    """
    A, B, D = x0.shape
    for j in prange(out.shape[0]):
        i = start + j
        for a in range(A):
            for b in range(B):
                for d in range(D):
                    out[j, a, b, d] = x0[a, b, d]
        if i == 0:
            continue
        y0, xa, y1, xb = rects[i - 1, 0], rects[i - 1, 1], rects[i - 1, 2], rects[i - 1, 3]
        if channels_last:
            for y in range(y0, y1):
                for x in range(xa, xb):
                    for c in range(D):
                        out[j, y, x, c] = base[y, x, c]
        else:
            for c in range(A):
                for y in range(y0, y1):
                    for x in range(xa, xb):
                        out[j, c, y, x] = base[c, y, x]
