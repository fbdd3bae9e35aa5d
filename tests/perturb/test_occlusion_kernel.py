"""Occlusion patch grid and batch kernel against a plain numpy reference."""

import numpy as np
import pytest

from onnxviz.errors import OptionError
from onnxviz.perturb import occlusion_batch, occlusion_heatmap, patch_grid


def numpy_occlusion(x0, base, rect, channels_last):
    out = x0.copy()
    y0, x_0, y1, x1 = rect
    if channels_last:
        out[y0:y1, x_0:x1] = base[y0:y1, x_0:x1]
    else:
        out[:, y0:y1, x_0:x1] = base[:, y0:y1, x_0:x1]
    return out


@pytest.mark.parametrize(
    "size,patch,stride,edges,grid",
    [
        ((224, 224), 32, 8, "truncate", (25, 25)),  # the benchmark: 625 forwards
        ((224, 224), 71, 1, "center", (224, 224)),  # MATLAB stride 1: 50,176 images
        ((30, 40), (5, 7), (4, 6), "truncate", (8, 7)),  # Captum: ceil((D - p) / s) + 1
        ((30, 40), (5, 7), (4, 6), "center", (8, 7)),
        ((30, 40), 4, 9, "truncate", (4, 5)),  # stride > patch: gaps between patches
    ],
)
def test_grid_counts(size, patch, stride, edges, grid):
    rects, shape = patch_grid(size, patch, stride, edges)
    assert shape == grid and rects.shape == (grid[0] * grid[1], 4)
    assert rects[:, 0].min() >= 0 and rects[:, 2].max() <= size[0]
    assert rects[:, 1].min() >= 0 and rects[:, 3].max() <= size[1]
    assert (rects[:, 2] > rects[:, 0]).all() and (rects[:, 3] > rects[:, 1]).all()


def test_truncate_covers_the_image_like_captum():
    rects, grid = patch_grid((20, 23), 6, 5, "truncate")
    assert grid == (4, 5)  # starts 0, 5, 10, 15 | 0, 5, 10, 15, 20
    assert rects[-1].tolist() == [15, 20, 20, 23]  # the last patch is cut at the border


def test_center_centres_patch_on_each_stride_point():
    rects, _ = patch_grid((20, 20), 5, 3, "center")
    # position (row 1, col 2): centre (3, 6), half-size 2 -> rows 1..5, cols 4..8
    assert rects[1 * 7 + 2].tolist() == [1, 4, 6, 9]
    assert rects[0].tolist() == [0, 0, 3, 3]  # clipped at the top-left corner


def test_grid_rejects_bad_options():
    with pytest.raises(OptionError, match="patch"):
        patch_grid((10, 10), 0, 1)
    assert patch_grid((10, 10), 11, 1)[0].tolist() == [[0, 0, 10, 10]]  # cut to the image
    with pytest.raises(OptionError, match="edges"):
        patch_grid((10, 10), 3, 1, "valid")


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_matches_numpy_at_any_start(channels_last):
    rng = np.random.default_rng(0)
    shape = (17, 23, 3) if channels_last else (3, 17, 23)
    x0 = rng.standard_normal(shape).astype(np.float32)
    base = rng.standard_normal(shape).astype(np.float32)
    rects, _ = patch_grid((17, 23), (4, 6), 3, "center")
    total = len(rects) + 1
    want = np.stack([x0] + [numpy_occlusion(x0, base, r, channels_last) for r in rects])
    for bs in (1, 7, total):
        got = np.full((total, *shape), np.nan, np.float32)
        for start in range(0, total, bs):
            out = np.full((min(bs, total - start), *shape), np.nan, np.float32)
            occlusion_batch(x0, base, rects, start, out, channels_last)
            got[start:start + len(out)] = out
        np.testing.assert_array_equal(got, want)
    assert np.array_equal(want[0], x0)  # sample 0 is the unperturbed image


@pytest.mark.parametrize("patch,stride,edges,gaps", [((4, 3), (3, 2), "truncate", False),
                                                     ((3, 2), (4, 3), "truncate", True),
                                                     (5, 2, "center", False)])
def test_heatmap_is_mean_drop_of_covering_patches(patch, stride, edges, gaps):
    rng = np.random.default_rng(1)
    rects, _ = patch_grid((14, 12), patch, stride, edges)
    drops = rng.standard_normal(len(rects))
    total = np.zeros((14, 12))
    count = np.zeros((14, 12))
    for d, (y0, x0, y1, x1) in zip(drops, rects):
        total[y0:y1, x0:x1] += d
        count[y0:y1, x0:x1] += 1
    want = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    got = occlusion_heatmap(drops, rects, 14, 12)
    assert got.dtype == np.float32
    assert (count == 0).any() if gaps else (count.min() >= 1 and count.max() >= 2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
