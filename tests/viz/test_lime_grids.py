"""LIME pictures against lime's own choice of superpixels; grids, comparisons and captions."""

import numpy as np
import pytest
from lime.lime_image import ImageExplanation

from onnxviz.errors import OptionError
from onnxviz.viz import (activation_grid, chosen_superpixels, colormap_lut, compare, filter_grid,
                         lime_image, resize_segments, tile)


def _segments(h=64, w=64, cell=16):
    ys, xs = np.mgrid[0:h, 0:w]
    return (ys // cell) * (w // cell) + xs // cell  # 16 square superpixels


@pytest.mark.parametrize("positive_only", [True, False])
@pytest.mark.parametrize("num_features,min_weight", [(5, 0.0), (3, 0.5), (16, 0.2)])
def test_chosen_superpixels_match_lime(positive_only, num_features, min_weight):
    seg = _segments()
    rng = np.random.default_rng(num_features)
    w = rng.normal(size=16)
    ex = ImageExplanation(np.zeros((64, 64, 3)), seg)
    ex.local_exp[0] = sorted(enumerate(w), key=lambda x: -abs(x[1]))
    _, mask = ex.get_image_and_mask(0, positive_only=positive_only, num_features=num_features,
                                    min_weight=min_weight)
    pos, neg = chosen_superpixels(w, num_features, positive_only, min_weight)
    assert set(pos) == set(np.unique(seg[mask == 1]))
    assert set(neg) == set(np.unique(seg[mask == -1]))


def test_lime_image_colours_positive_green_negative_red_at_original_size():
    seg = _segments()
    w = np.zeros(16)
    w[0], w[15] = 1.0, -1.0
    img = np.full((128, 96, 3), 100, np.uint8)  # not the segments' size: labels are resized
    out = lime_image(img, seg, w, num_features=2, boundary_color=(255, 255, 0),
                     positive_color=(0, 200, 0), negative_color=(220, 0, 0), alpha=0.45)
    assert out.shape == img.shape
    centre_pos, centre_neg, centre_none = out[12, 10], out[115, 85], out[60, 40]
    # (1 - alpha) * pixel + alpha * colour, alpha = 0.45
    np.testing.assert_array_equal(centre_pos, [55, 145, 55])  # green tint
    np.testing.assert_array_equal(centre_neg, [154, 55, 55])  # red tint (0, 220, 0) -> 154
    np.testing.assert_array_equal(centre_none, [100, 100, 100])
    yellow = (out[..., 0] == 255) & (out[..., 1] == 255) & (out[..., 2] == 0)
    assert yellow[32].mean() > 0.9 or yellow[31].mean() > 0.9  # boundary between segment rows


def test_resize_segments_keeps_labels():
    seg = _segments()
    big = resize_segments(seg, (200, 100))
    assert big.shape == (200, 100) and set(np.unique(big)) == set(range(16))


def test_tile_layout_and_padding():
    a = np.zeros((10, 20, 3), np.uint8)
    b = np.full((10, 20, 3), 200, np.uint8)
    g = tile([a, b, a], cols=2, pad=2, background=255)
    assert g.shape == (2 + 2 * 12, 2 + 2 * 22, 3)
    assert (g[2:12, 2:22] == 0).all() and (g[2:12, 24:44] == 200).all()
    assert (g[14:24, 24:44] == 255).all()  # empty cell stays background
    with pytest.raises(OptionError):
        tile([])


def test_activation_grid_normalises_each_channel_on_its_own():
    act = np.zeros((2, 4, 4), np.float32)
    act[0, 0, 0] = 1000.0
    act[1, 3, 3] = 0.001
    g = activation_grid(act, cmap="viridis", tile_size=4, cols=2)
    lut = colormap_lut("viridis")
    np.testing.assert_array_equal(g[2, 2], lut[255])  # channel 0's max
    np.testing.assert_array_equal(g[2 + 3, 2 + 4 + 2 + 3], lut[255])  # channel 1's max
    np.testing.assert_array_equal(g[2 + 1, 2 + 1], lut[0])
    with pytest.raises(OptionError, match="out of range"):
        activation_grid(act, channels=[5])


def test_filter_grid_accepts_float_images():
    imgs = np.random.default_rng(0).random((3, 8, 8, 3)).astype(np.float32)
    g = filter_grid(imgs, cols=3)
    assert g.dtype == np.uint8 and g.shape == (2 + 10, 2 + 3 * 10, 3)
    np.testing.assert_array_equal(g[2:10, 2:10], np.rint(imgs[0] * 255).astype(np.uint8))


def test_compare_has_one_tile_per_method_plus_original():
    img = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    maps = {"a": np.random.rand(7, 7), "b": np.random.rand(7, 7), "c": np.random.rand(7, 7)}
    out = compare(img, maps, height=50)
    assert out.shape == (2 + 20 + 50 + 2, 2 + 4 * (75 + 2), 3)
