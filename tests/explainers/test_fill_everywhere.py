"""Occlusion, LIME, RISE and KernelSHAP take the same fills, read by the same code (issue 20, 2).

docs/methods.md said LIME's, RISE's and KernelSHAP's ``fill`` take "any occlusion fill"; on main
they refused ``"zero"``, arrays and images with an OptionError. On the linear raw-pixel model
(``linear_onnx``) the model input is the pixels themselves, so each new kind of fill has a twin
that the methods always took: ``"zero"`` is black, a model-space tensor is the image of the same
values, and an image of one grey level is that number. Each pair must give the same map.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from linear_onnx import H, W, image, linear_model
from onnxviz.errors import OptionError

LIGHT = {
    "occlusion": {"patch": 4, "stride": 2},
    "lime": {"num_samples": 40, "segmentation": "grid", "n_segments": 12},
    "rise": {"num_masks": 40, "cells": 3},
    "kernelshap": {"num_samples": 40, "segmentation": "grid", "n_segments": 12},
}


@pytest.fixture(scope="module", params=["NCHW", "NHWC"])
def model(request):
    return ov.load(linear_model(request.param))


def _map(model, method, fill):
    e = ov.explain(model, image(), method=method, score="logit", fill=fill, **LIGHT[method])
    assert np.all(np.isfinite(e.heatmap))
    return e.heatmap


def _tensor(model, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (H, W, 3) as the raw model's input tensor, in its layout."""
    x = pixels.astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1) if model.input.layout == "NCHW" else x)


@pytest.mark.parametrize("method", list(LIGHT))
def test_zero_is_the_zero_input(model, method):
    np.testing.assert_allclose(_map(model, method, "zero"), _map(model, method, "black"),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", list(LIGHT))
def test_tensor_and_image_fills(model, method):
    rng = np.random.default_rng(7)
    other = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    as_image = _map(model, method, other)
    as_tensor = _map(model, method, _tensor(model, other))
    np.testing.assert_allclose(as_tensor, as_image, rtol=0, atol=1e-5)
    grey = _map(model, method, np.full((H, W, 3), 100, np.uint8))
    np.testing.assert_allclose(grey, _map(model, method, 100), rtol=0, atol=1e-5)
    # and the fill matters: a different image gives a different map
    assert np.abs(as_image - grey).max() > 1e-3


@pytest.mark.parametrize("method", list(LIGHT))
def test_image_file_fill(model, method, tmp_path):
    import cv2

    other = np.random.default_rng(3).integers(0, 256, (H, W, 3)).astype(np.uint8)
    path = tmp_path / "fill.png"
    cv2.imwrite(str(path), other[..., ::-1])
    np.testing.assert_allclose(_map(model, method, str(path)), _map(model, method, other),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", list(LIGHT))
def test_bad_fills_refused_alike(model, method):
    with pytest.raises(OptionError, match="fill"):
        ov.explain(model, image(), method=method, fill=np.zeros((5, 5, 2), np.float32),
                   **LIGHT[method])
    with pytest.raises(OptionError, match="fill"):
        ov.explain(model, image(), method=method, fill="not-a-fill", **LIGHT[method])
