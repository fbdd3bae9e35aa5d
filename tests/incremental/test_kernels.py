"""The incremental run's Numba gather against its definition in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.incremental.kernels import gather_windows


def gather_reference(cache, crops, crop_at, read_at, h, w):
    """(n, C, h, w): the window of ``cache`` (C, H, W) at ``read_at[j]``, ``crops[j]`` pasted at
    ``crop_at[j]`` (cache coordinates), clipped to the window."""
    out = np.empty((len(crops), cache.shape[0], h, w), cache.dtype)
    for j, ((ry, rx), (cy, cx)) in enumerate(zip(read_at, crop_at)):
        canvas = cache.copy()
        ch, cw = crops.shape[2:]
        y0, x0 = max(cy, 0), max(cx, 0)
        y1, x1 = min(cy + ch, cache.shape[1]), min(cx + cw, cache.shape[2])
        canvas[:, y0:y1, x0:x1] = crops[j][:, y0 - cy:y1 - cy, x0 - cx:x1 - cx]
        out[j] = canvas[:, ry:ry + h, rx:rx + w]
    return out


@pytest.mark.parametrize("last", [False, True])
def test_gather_windows_equals_its_definition(last):
    """Crops inside the window, across each of its edges, and wholly outside it."""
    rng = np.random.default_rng(0)
    C, H, W, h, w, ch, cw = 5, 23, 19, 9, 8, 4, 6
    cache = rng.normal(size=(C, H, W)).astype(np.float32)
    read_at = np.array([[0, 0], [3, 4], [14, 11], [7, 2], [10, 10], [2, 9]], np.int32)
    shift = np.array([[2, 1], [-2, 0], [6, 5], [0, -4], [-6, 0], [12, 1]], np.int32)
    crop_at = read_at + shift
    crops = rng.normal(size=(len(read_at), C, ch, cw)).astype(np.float32)
    want = gather_reference(cache, crops, crop_at, read_at, h, w)
    if last:
        out = np.empty((len(read_at), h, w, C), np.float32)
        gather_windows(np.ascontiguousarray(cache.transpose(1, 2, 0)),
                       np.ascontiguousarray(crops.transpose(0, 2, 3, 1)), crop_at, read_at, out,
                       True)
        out = out.transpose(0, 3, 1, 2)
    else:
        out = np.empty((len(read_at), C, h, w), np.float32)
        gather_windows(cache, crops, crop_at, read_at, out, False)
    np.testing.assert_array_equal(out, want)


def test_gather_windows_refuses_strided_views():
    cache = np.zeros((2, 8, 8), np.float32)
    out = np.zeros((1, 2, 4, 8), np.float32)[..., ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        gather_windows(cache, np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2), np.int32),
                       np.zeros((1, 2), np.int32), out, False)
