"""Numba kernels of the incremental run: crop, gather and paste windows of cached tensors.

Tensors are one sample without its batch axis, (C, H, W) or (H, W, C) (``last``); a batch of
crops is (n, C, h, w) or (n, h, w, C). Offsets are (n, 2) int32 (row, column) top-left corners.
"""

from __future__ import annotations

from numba import prange

from ..perturb._jit import kernel


@kernel
def occluded_windows(x0, base, rects, at, out, last):
    """``out[j]`` = the window of the occluded image ``j`` at ``at[j]``: ``x0`` there, with
    ``base`` inside ``rects[j]`` (y0, x0, y1, x1)."""
    n, h, w = out.shape[0], (out.shape[1] if last else out.shape[2]), (
        out.shape[2] if last else out.shape[3])
    C = x0.shape[2] if last else x0.shape[0]
    for j in prange(n):
        ay, ax = at[j, 0], at[j, 1]
        y0, xa, y1, xb = rects[j, 0], rects[j, 1], rects[j, 2], rects[j, 3]
        for c in range(C):
            for y in range(h):
                yy = ay + y
                inside_y = y0 <= yy < y1
                for x in range(w):
                    xx = ax + x
                    hide = inside_y and xa <= xx < xb
                    if last:
                        out[j, y, x, c] = base[yy, xx, c] if hide else x0[yy, xx, c]
                    else:
                        out[j, c, y, x] = base[c, yy, xx] if hide else x0[c, yy, xx]


def gather_windows(cache, crops, crop_at, read_at, out, last):
    """``out[j]`` = the window at ``read_at[j]`` of ``cache`` with ``crops[j]`` pasted at
    ``crop_at[j]`` (both offsets in ``cache``'s coordinates; ``cache`` may be padded). Row by
    row: each window row is the cached row, then the crop's part of it (no test per value)."""
    if not (cache.flags.c_contiguous and crops.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError("gather_windows needs C-contiguous arrays")
    (_gather_last if last else _gather_first)(cache, crops, crop_at, read_at, out)


@kernel
def _gather_first(cache, crops, crop_at, read_at, out):
    """:func:`gather_windows` of (C, H, W) tensors: one (position, channel) plane an iteration,
    on flat views (a window row is short, a dozen values: views or 4-D indexing per row cost
    more than the copy)."""
    n, C, h, w = out.shape
    H, W = cache.shape[1], cache.shape[2]
    ch, cw = crops.shape[2], crops.shape[3]
    flat = cache.ravel()  # views: every array is C-contiguous (gather_windows checks)
    for jc in prange(n * C):
        j, c = jc // C, jc % C
        dst, src = out[j, c].ravel(), crops[j, c].ravel()
        ry, rx = read_at[j, 0], read_at[j, 1]
        oy, ox = crop_at[j, 0] - ry, crop_at[j, 1] - rx  # the crop's corner in the window
        lo, hi = max(ox, 0), min(ox + cw, w)  # the window's columns the crop covers
        for y in range(h):
            a, b = (c * H + ry + y) * W + rx, y * w
            for x in range(w):
                dst[b + x] = flat[a + x]
            iy = y - oy
            if 0 <= iy < ch:
                k = iy * cw - ox
                for x in range(lo, hi):
                    dst[b + x] = src[k + x]


@kernel
def _gather_last(cache, crops, crop_at, read_at, out):
    """:func:`gather_windows` of (H, W, C) tensors: a window row is one run of w x C values."""
    n, h, w = out.shape[0], out.shape[1], out.shape[2]
    ch, cw = crops.shape[1], crops.shape[2]
    for j in prange(n):
        ry, rx = read_at[j, 0], read_at[j, 1]
        oy, ox = crop_at[j, 0] - ry, crop_at[j, 1] - rx
        lo, hi = max(ox, 0), min(ox + cw, w)
        for y in range(h):
            out[j, y] = cache[ry + y, rx:rx + w]
            iy = y - oy
            if 0 <= iy < ch and lo < hi:
                out[j, y, lo:hi] = crops[j, iy, lo - ox:hi - ox]


@kernel
def paste_windows(cache, crops, at, out, last):
    """``out[j]`` = ``cache`` with ``crops[j]`` pasted at ``at[j]`` (the whole tensor)."""
    n = out.shape[0]
    ch, cw = (crops.shape[1], crops.shape[2]) if last else (crops.shape[2], crops.shape[3])
    for j in prange(n):
        out[j] = cache
        ay, ax = at[j, 0], at[j, 1]
        if last:
            out[j, ay:ay + ch, ax:ax + cw, :] = crops[j]
        else:
            out[j, :, ay:ay + ch, ax:ax + cw] = crops[j]
