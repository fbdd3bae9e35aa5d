"""Overlays on the original image size, and the Keras-style threshold / top-k% masks."""

import cv2
import numpy as np
import pytest

from onnxviz.errors import OptionError
from onnxviz.viz import apply_colormap, apply_mask, heatmap_mask, overlay, resize_heatmap


@pytest.fixture
def photo():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(300, 451, 3), dtype=np.uint8)


def test_overlay_is_at_the_original_size_and_follows_the_formula(photo):
    h = np.random.default_rng(2).random((224, 224)).astype(np.float32)
    out = overlay(photo, h, alpha=0.3, cmap="turbo")
    assert out.shape == photo.shape and out.dtype == np.uint8
    big = cv2.resize(h, (451, 300), interpolation=cv2.INTER_LINEAR)
    expect = 0.7 * photo.astype(np.float64) + 0.3 * apply_colormap(big, "turbo").astype(np.float64)
    assert np.abs(out.astype(np.float64) - expect).max() <= 0.5 + 1e-6


def test_overlay_alpha_extremes(photo):
    h = np.random.default_rng(3).random((7, 7))
    np.testing.assert_array_equal(overlay(photo, h, alpha=0.0), photo)
    full = overlay(photo, h, alpha=1.0, cmap="jet")
    np.testing.assert_array_equal(full, apply_colormap(resize_heatmap(h, (300, 451)), "jet"))


def test_hot_spot_lands_in_the_same_place_on_the_original(photo):
    h = np.zeros((224, 224), np.float32)
    h[20:60, 160:200] = 1.0  # top right of the model's view
    out = overlay(photo, h, alpha=1.0, cmap="jet").astype(int)
    red = (out[..., 0] > 100) & (out[..., 2] < 50)
    ys, xs = np.nonzero(red)
    assert ys.max() < 300 * 70 / 224 and xs.min() > 451 * 150 / 224


def test_overlay_rejects_bad_inputs(photo):
    with pytest.raises(OptionError):
        overlay(photo, np.zeros((4, 4)), alpha=1.5)
    with pytest.raises(OptionError):  # [0, 1] floats would show black
        overlay(photo.astype(np.float32) / 255, np.zeros((4, 4)))
    with pytest.raises(OptionError):
        overlay(np.full(photo.shape, np.nan, np.float32), np.zeros((4, 4)))
    with pytest.raises(OptionError):
        overlay(photo.astype(np.float32) * 2, np.zeros((4, 4)))
    with pytest.raises(OptionError):
        overlay(photo, np.zeros((0, 4)))


def test_threshold_mask_keeps_the_upper_part_of_a_ramp():
    ramp = np.tile(np.linspace(0, 1, 101), (5, 1))
    m = heatmap_mask(ramp, threshold=0.7)
    assert set(np.unique(m)) == {0, 255}
    np.testing.assert_array_equal(m[0] == 255, np.linspace(0, 1, 101) >= 0.7 - 1e-9)


def test_top_percent_keeps_exactly_that_many_distinct_pixels():
    h = np.random.default_rng(4).random((50, 40))
    m = heatmap_mask(h, top_percent=10)
    assert (m == 255).sum() == 200
    assert h[m == 255].min() > h[m == 0].max()


def test_top_percent_drops_ties_at_the_cut():
    h = np.zeros((20, 20))
    h[:2, :5] = 1.0  # 10 hot pixels = 2.5 %
    m = heatmap_mask(h, top_percent=10)
    np.testing.assert_array_equal(m == 255, h == 1.0)


def test_apply_mask_is_bitwise_and_at_original_size(photo):
    h = np.zeros((224, 224), np.float32)
    h[100:150, 50:120] = 1.0
    out = apply_mask(photo, h, threshold=0.5)
    mask = heatmap_mask(h, (300, 451), threshold=0.5) == 255
    assert out.shape == photo.shape
    np.testing.assert_array_equal(out[mask], photo[mask])
    assert not out[~mask].any()
    assert 0.04 < mask.mean() < 0.1  # 50*70/224**2 = 7 %


@pytest.mark.parametrize("kw", [{"threshold": 1.5}, {"threshold": None}, {"top_percent": 0},
                                {"top_percent": 101}])
def test_mask_option_errors(kw):
    with pytest.raises(OptionError):
        heatmap_mask(np.ones((3, 3)), **kw)


def test_overlay_shows_float_pixels_rounded(photo):
    """Pixels read at full precision (float 0..255) are drawn as their 8-bit rounding."""
    heat = np.random.default_rng(0).random((4, 4))
    exact = photo.astype(np.float32) + np.float32(0.3) * (photo < 255)
    np.testing.assert_array_equal(overlay(exact, heat), overlay(photo, heat))
