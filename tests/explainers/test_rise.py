"""RISE against the paper's formula computed in pixel space with the reference masks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

import onnxviz as ov
from linear_onnx import image, linear_model
from onnxviz.errors import OptionError
from onnxviz.perturb import mask_params


def reference_masks(n, cells, p, size, seed):
    """github.com/eclique/RISE generate_masks, with the grids and shifts drawn from ``seed``."""
    grids, shifts, cell = mask_params(n, cells, p, size, seed)
    up = (cells + 1) * cell
    return np.stack([
        resize(g, up, order=1, mode="reflect", anti_aliasing=False)[
            dy:dy + size[0], dx:dx + size[1]]
        for g, (dy, dx) in zip(grids, shifts)])


@pytest.mark.parametrize("fill,score", [("black", "probability"), ("gray", "logit")])
def test_equals_paper_formula_in_pixel_space(effnet, chelsea, fill, score):
    n, p = 24, 0.4
    e = ov.explain(effnet, chelsea, method="rise", num_masks=n, cells=5, p=p, seed=3, fill=fill,
                   score=score, batch_size=12)
    masks = reference_masks(n, 5, p, (224, 224), seed=3)
    base = 0.0 if fill == "black" else 128.0
    pixels = masks[..., None] * chelsea + (1 - masks[..., None]) * base  # I . M (+ fill)
    logits = effnet.forward(effnet.normalize(pixels.astype(np.float32)), batch_size=12)
    s = logits.astype(np.float64)
    if score == "probability":
        s = np.exp(s - s.max(1, keepdims=True))
        s /= s.sum(1, keepdims=True)
    s = s[:, e.target]
    want = np.einsum("n,nhw->hw", s, masks) / (n * p)  # Petsiuk et al. 2018, eq. 6
    np.testing.assert_allclose(e.raw, s, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e.heatmap, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    assert e.heatmap.std() > 1e-3 * np.abs(want).max()


def test_seed_and_batch_size(effnet, chelsea):
    run = lambda **kw: ov.explain(effnet, chelsea, method="rise", num_masks=16, cells=4, **kw)
    a, b, c = run(seed=0, batch_size=17), run(seed=0, batch_size=3), run(seed=1, batch_size=17)
    np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-5, atol=1e-6)
    assert np.abs(a.heatmap - c.heatmap).max() > 1e-3 * np.abs(a.heatmap).max()
    assert a.extras["forwards"] == 17


@pytest.mark.parametrize("kw,match", [({"p": 0.0}, r"p must be a number in \(0, 1\)"), ({"cells": 0}, "cells"),
                                      ({"fill": "plaid"}, "fill"), ({"score": "odds"}, "score")])
def test_bad_options(effnet, kw, match):
    with pytest.raises(OptionError, match=match):
        ov.explain(effnet, np.zeros((8, 8, 3), np.uint8), method="rise", **kw)


def test_layouts_and_lists_agree_on_a_linear_model():
    """NCHW and NHWC inputs with the same image-order weights give the same saliency."""
    imgs = [image(1), image(2)]
    a = ov.explain(ov.load(linear_model("NCHW")), imgs, method="rise", num_masks=50, cells=3,
                   score="logit", target=[0, 1], batch_size=8)
    b = ov.explain(ov.load(linear_model("NHWC")), imgs, method="rise", num_masks=50, cells=3,
                   score="logit", target=[0, 1], batch_size=50)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.heatmap, y.heatmap, rtol=1e-5, atol=1e-6)
    assert [x.target for x in a] == [0, 1]
    single = ov.explain(ov.load(linear_model("NHWC")), imgs[1], method="rise", num_masks=50,
                        cells=3, score="logit", target=1, batch_size=13)
    np.testing.assert_allclose(single.heatmap, b[1].heatmap, rtol=1e-5, atol=1e-6)
