"""Colormaps against matplotlib's tables and MATLAB's published parula; normalisation maths."""

import matplotlib
import numpy as np
import pytest

from onnxviz.errors import OptionError
from onnxviz.viz import COLORMAPS, apply_colormap, colorbar, colormap_lut, normalize


@pytest.mark.parametrize("name", ["jet", "turbo", "viridis", "inferno", "bwr"])
def test_lut_matches_matplotlib(name):
    ref = np.rint(matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255)
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert np.abs(ref - lut).max() <= 1  # rounding only


def test_parula_matches_matlab_endpoints():
    # MATLAB R2014b+ parula(64), first and last rows
    first = np.array([0.2081, 0.1663, 0.5292]) * 255
    last = np.array([0.9763, 0.9831, 0.0538]) * 255
    lut = colormap_lut("parula").astype(float)
    assert np.abs(lut[0] - first).max() <= 1.5
    assert np.abs(lut[255] - last).max() <= 1.5


def test_unknown_colormap_lists_choices():
    with pytest.raises(OptionError, match="viridis"):
        colormap_lut("rainbow")


def test_normalize_linear_and_clipped():
    h = np.array([[0.0, 1.0], [2.0, 4.0]])
    np.testing.assert_allclose(normalize(h), [[0, 0.25], [0.5, 1]], atol=1e-7)
    np.testing.assert_allclose(normalize(h, vmin=1, vmax=3), [[0, 0], [0.5, 1]], atol=1e-7)


def test_normalize_constant_nan_and_symmetric():
    assert not normalize(np.full((3, 3), 7.0)).any()
    h = np.array([[np.nan, 1.0], [np.inf, 3.0]])
    np.testing.assert_allclose(normalize(h), [[0, 0], [0, 1]])
    s = normalize(np.array([[-2.0, 0.0, 1.0]]), symmetric=True)
    np.testing.assert_allclose(s, [[0.0, 0.5, 0.75]], atol=1e-7)


def test_apply_colormap_indexes_lut():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(9, 11))
    out = apply_colormap(h, "viridis")
    idx = np.rint((h - h.min()) / (h.max() - h.min()) * 255).astype(int)
    np.testing.assert_array_equal(out, colormap_lut("viridis")[idx])


def test_diverging_map_puts_zero_in_the_middle():
    out = apply_colormap(np.array([[-1.0, 0.0, 3.0]]), "bwr")
    assert out[0, 1].min() >= 253  # zero is white (256 entries: no exact middle)
    assert out[0, 0, 2] > out[0, 0, 0]  # negative is blue
    assert tuple(out[0, 2]) == (255, 0, 0)  # the largest magnitude is full red


@pytest.mark.parametrize("name", COLORMAPS)
def test_colorbar_runs_low_to_high(name):
    bar = colorbar(name, length=100, thickness=5)
    lut = colormap_lut(name)
    assert bar.shape == (100, 5, 3)
    np.testing.assert_array_equal(bar[-1, 0], lut[0])
    np.testing.assert_array_equal(bar[0, 0], lut[255])
    h = colorbar(name, length=100, thickness=5, vertical=False)
    np.testing.assert_array_equal(h[0, 0], lut[0])
    np.testing.assert_array_equal(h[0, -1], lut[255])


def test_non_2d_heatmap_is_an_option_error():
    with pytest.raises(OptionError):
        apply_colormap(np.zeros((2, 2, 2)))


def test_clip_percent_saturates_outliers_like_captum():
    h = np.arange(1000, dtype=np.float64).reshape(25, 40)
    h[0, 0] = 1e6  # one outlier
    n = normalize(h, clip_percent=1.0)
    q = np.percentile(h, 99.0)
    np.testing.assert_allclose(n, np.clip((h - h.min()) / (q - h.min()), 0, 1), atol=1e-6)
    assert (n == 1.0).sum() == 10  # the top 1 %
    sparse = np.zeros((10, 10))
    sparse[0, 0] = 5.0  # 99 % zeros: the percentile is 0, so the max is kept
    kept = normalize(sparse, clip_percent=2.0)
    assert kept.max() == 1.0 and kept.sum() == 1.0
    h = np.array([[-4.0, 1.0, 2.0, 100.0]])
    s = normalize(h, symmetric=True, clip_percent=30)
    m = np.percentile(np.abs(h), 70)
    np.testing.assert_allclose(s, np.clip((h + m) / (2 * m), 0, 1))
