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


@kernel
def gather_windows(cache, crops, crop_at, read_at, out, last):
    """``out[j]`` = the window at ``read_at[j]`` of ``cache`` with ``crops[j]`` pasted at
    ``crop_at[j]`` (both offsets in ``cache``'s coordinates; ``cache`` may be padded)."""
    n = out.shape[0]
    h, w = (out.shape[1], out.shape[2]) if last else (out.shape[2], out.shape[3])
    ch, cw = (crops.shape[1], crops.shape[2]) if last else (crops.shape[2], crops.shape[3])
    C = cache.shape[2] if last else cache.shape[0]
    for j in prange(n):
        ry, rx = read_at[j, 0], read_at[j, 1]
        cy, cx = crop_at[j, 0], crop_at[j, 1]
        for c in range(C):
            for y in range(h):
                yy = ry + y
                iy = yy - cy
                for x in range(w):
                    xx = rx + x
                    ix = xx - cx
                    if 0 <= iy < ch and 0 <= ix < cw:
                        if last:
                            out[j, y, x, c] = crops[j, iy, ix, c]
                        else:
                            out[j, c, y, x] = crops[j, c, iy, ix]
                    elif last:
                        out[j, y, x, c] = cache[yy, xx, c]
                    else:
                        out[j, c, y, x] = cache[c, yy, xx]


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
