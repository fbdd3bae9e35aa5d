"""Fill options: names, numbers, per-channel colours and per-superpixel means."""

import cv2
import numpy as np
import pytest

from onnxviz.errors import OptionError
from onnxviz.perturb import baseline, parse_fill


@pytest.mark.parametrize(
    "fill,want",
    [(0, [0, 0, 0]), (128.5, [128.5] * 3), ((1, 2, 3), [1, 2, 3]), ("10, 20,30", [10, 20, 30]),
     ("7", [7, 7, 7])],
)
def test_constant_fills(fill, want):
    img = np.zeros((4, 5, 3), np.uint8)
    got = baseline(img, fill)
    assert got.shape == (4, 5, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.broadcast_to(np.float32(want), (4, 5, 3)))


def test_named_fills():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 48, 3)).astype(np.uint8)
    np.testing.assert_array_equal(baseline(img, "gray"), 128.0)
    np.testing.assert_array_equal(baseline(img, "black"), 0.0)
    np.testing.assert_allclose(baseline(img, "mean")[5, 7], img.reshape(-1, 3).mean(0), rtol=1e-6)
    blur = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigmaX=2.0)
    np.testing.assert_allclose(baseline(img, "Blur"), blur, rtol=1e-6, atol=1e-4)


def test_mean_per_superpixel_like_lime():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (10, 12, 3)).astype(np.uint8)
    seg = rng.integers(0, 5, (10, 12))
    got = baseline(img, "mean", segments=seg)
    for s in range(5):
        # lime_image: fudged_image[segments == x] = mean colour of segment x
        np.testing.assert_allclose(got[seg == s], np.broadcast_to(img[seg == s].mean(0), got[seg == s].shape), rtol=1e-6)


@pytest.mark.parametrize("bad", ["grey-ish", (1, 2), float("nan"), "1,2,3,4"])
def test_bad_fill_is_an_option_error(bad):
    with pytest.raises(OptionError, match="fill"):
        parse_fill(bad)
