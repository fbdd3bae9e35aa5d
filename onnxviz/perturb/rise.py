"""RISE masks: random coarse binary grids, bilinearly upsampled and randomly shifted.

Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018, sec. 3.2 "Mask generation" (https://arxiv.org/abs/1806.07421). A grid of ``cells x cells``
cells, each kept with probability ``p``, is upsampled to ``(cells + 1) * cell`` pixels with
``cell = ceil(H / cells)`` and cropped at a random offset in ``[0, cell)``; the interpolation is
the reference implementation's ``skimage.transform.resize(order=1, mode="reflect")``.
Sample 0 of a set is the unperturbed image (mask of ones); sample ``i >= 1`` uses grid ``i - 1``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._jit import kernel


def mask_params(num_masks: int, cells: int, p: float, size, seed: int):
    """Draw the random part of ``num_masks`` RISE masks.

    Args:
        num_masks: number of masks.
        cells: grid side ``s``.
        p: probability that a cell is kept.
        size: image (H, W).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``(grids, shifts, cell)``: float32 (N, s, s) binary grids, int64 (N, 2) offsets
        ``(dy, dx)`` and the int64 cell size ``(ch, cw)``.
    """
    rng = np.random.default_rng(seed)
    cell = np.array([math.ceil(size[0] / cells), math.ceil(size[1] / cells)], dtype=np.int64)
    grids = (rng.random((int(num_masks), int(cells), int(cells))) < p).astype(np.float32)
    shifts = np.stack(
        [rng.integers(0, cell[0], num_masks), rng.integers(0, cell[1], num_masks)], axis=1
    ).astype(np.int64)
    return grids, shifts, cell


@njit(nogil=True, cache=True)
def _axis_weights(n_out, shift, up, s):
    """Source index pairs and weights along one axis for ``resize`` with mode "reflect"."""
    i0 = np.empty(n_out, np.int64)
    i1 = np.empty(n_out, np.int64)
    f = np.empty(n_out, np.float64)
    scale = s / up
    for k in range(n_out):
        c = (k + shift + 0.5) * scale - 0.5
        if c < 0.0:
            c = -c
        if c > s - 1:
            c = 2.0 * (s - 1) - c
        a = int(math.floor(c))
        if a > s - 1:
            a = s - 1
        i0[k] = a
        i1[k] = min(a + 1, s - 1)
        f[k] = c - a
    return i0, i1, f


@kernel
def rise_masks(grids, shifts, cell, start, out):
    """Write masks ``start .. start + len(out) - 1`` of a RISE set into ``out`` (n, H, W) float32.

    Mask 0 is all ones (the unperturbed image); mask ``i >= 1`` upsamples ``grids[i - 1]``.
    """
    n, H, W = out.shape
    s = grids.shape[1]
    up_h, up_w = (s + 1) * cell[0], (s + 1) * cell[1]
    for j in prange(n):
        i = start + j
        if i == 0:
            out[j] = 1.0
            continue
        g = grids[i - 1]
        y0, y1, fy = _axis_weights(H, shifts[i - 1, 0], up_h, s)
        x0, x1, fx = _axis_weights(W, shifts[i - 1, 1], up_w, s)
        for y in range(H):
            a, b, t = y0[y], y1[y], fy[y]
            for x in range(W):
                u = fx[x]
                top = (1.0 - u) * g[a, x0[x]] + u * g[a, x1[x]]
                bot = (1.0 - u) * g[b, x0[x]] + u * g[b, x1[x]]
                out[j, y, x] = (1.0 - t) * top + t * bot


@njit(nogil=True, cache=True)
def _blend_one(m, x0, base, o, channels_last):
    """``o = base + m * (x0 - base)``, the (H, W) mask ``m`` broadcast over channels."""
    if channels_last:
        H, W, C = x0.shape
        for y in range(H):
            for x in range(W):
                w = m[y, x]
                for c in range(C):
                    o[y, x, c] = base[y, x, c] + w * (x0[y, x, c] - base[y, x, c])
    else:
        C, H, W = x0.shape
        for c in range(C):
            for y in range(H):
                for x in range(W):
                    o[c, y, x] = base[c, y, x] + m[y, x] * (x0[c, y, x] - base[c, y, x])


@kernel
def blend_batch(x0, base, masks, out, channels_last):
    """``out[j] = base + masks[j] * (x0 - base)``, the mask broadcast over channels.

    With a per-pixel affine preprocessing ``A``, ``A(m * p + (1 - m) * b) = b' + m * (A(p) - b')``
    where ``b' = A(b)``, so blending preprocessed tensors equals preprocessing blended pixels.
    """
    for j in prange(out.shape[0]):
        _blend_one(masks[j], x0, base, out[j], channels_last)


@kernel
def rise_blend(grids, shifts, cell, start, x0, base, out, channels_last):
    """:func:`rise_masks` then :func:`blend_batch` in one pass, the masks never written: the
    same numbers bit for bit (each grid's rows are interpolated once, then each pixel's mask
    value is the same float64 expression rounded to float32), for methods that need the masked
    images but not the masks (D-RISE, which sums its masks on the grid, :func:`bin_grids`)."""
    n = out.shape[0]
    s = grids.shape[1]
    if channels_last:
        H, W, C = x0.shape
    else:
        C, H, W = x0.shape
    up_h, up_w = (s + 1) * cell[0], (s + 1) * cell[1]
    for j in prange(n):
        i = start + j
        o = out[j]
        if i == 0:
            m = np.ones((H, W), np.float32)
        else:
            g = grids[i - 1]
            y0, y1, fy = _axis_weights(H, shifts[i - 1, 0], up_h, s)
            xa, xb, fx = _axis_weights(W, shifts[i - 1, 1], up_w, s)
            rows = np.empty((s, W), np.float64)
            for r in range(s):
                for x in range(W):
                    u = fx[x]
                    rows[r, x] = (1.0 - u) * g[r, xa[x]] + u * g[r, xb[x]]
            m = np.empty((H, W), np.float32)
            for y in range(H):
                a, b, t = y0[y], y1[y], fy[y]
                for x in range(W):
                    m[y, x] = (1.0 - t) * rows[a, x] + t * rows[b, x]
        _blend_one(m, x0, base, o, channels_last)


@kernel
def bin_grids(acc, grids, shifts, cell, start, weights):
    """``acc[k, b] += weights[j, k] * grids[i - 1]`` for masks ``i = start + j >= 1``, where ``b``
    is the bin of the mask's shift (``dy * cw + dx``), samples added in order.

    A RISE mask is linear in its grid, with weights fixed by its shift, so
    ``sum_j w_j M_j = sum_b upsample_b(sum_(j in b) w_j g_j)``: the saliency of N masks sums
    N small grids per target, and :func:`upsample_bins` upsamples one grid per shift at the
    end (D-RISE weighs every mask once per box; its maps cost ``K x N x s^2`` instead of
    ``K x N x H x W``).

    Args:
        acc: (K, ch * cw, s, s) float64 sums, one grid per target and shift.
        grids, shifts, cell: as from :func:`mask_params`.
        start: index of the batch's first mask in the set (mask 0 is the image itself, skipped).
        weights: (n, K) weights of the batch's masks.
    """
    n, K = weights.shape
    for k in prange(K):
        for j in range(n):
            i = start + j
            if i == 0:
                continue
            b = shifts[i - 1, 0] * cell[1] + shifts[i - 1, 1]
            w = weights[j, k]
            acc[k, b] += w * grids[i - 1]


@kernel
def upsample_bins(acc, cell, out):
    """``out[k] += sum_b upsample_b(acc[k, b])``: the masks' weighted sum from
    :func:`bin_grids`' sums, each upsampled as :func:`rise_masks` upsamples a grid with the
    bin's shift. ``out`` is (K, H, W) float64. The bilinear upsampling is separable and each
    axis's weights depend on that axis's shift alone, so the rows of every bin are
    interpolated first, summed per vertical shift, and each such sum interpolated once down
    the columns: ``K x (bins x s x W + ch x H x W)`` steps, whatever the number of masks."""
    K, B, s, _ = acc.shape
    _, H, W = out.shape
    up_h, up_w = (s + 1) * cell[0], (s + 1) * cell[1]
    for k in prange(K):
        rows = np.empty((s, W), np.float64)
        for dy in range(cell[0]):
            rows[:] = 0.0
            used = False
            for dx in range(cell[1]):
                g = acc[k, dy * cell[1] + dx]
                if not np.any(g != 0.0):
                    continue
                used = True
                x0, x1, fx = _axis_weights(W, dx, up_w, s)
                for r in range(s):
                    for x in range(W):
                        u = fx[x]
                        rows[r, x] += (1.0 - u) * g[r, x0[x]] + u * g[r, x1[x]]
            if not used:
                continue
            y0, y1, fy = _axis_weights(H, dy, up_h, s)
            for y in range(H):
                a, c, t = y0[y], y1[y], fy[y]
                for x in range(W):
                    out[k, y, x] += (1.0 - t) * rows[a, x] + t * rows[c, x]
