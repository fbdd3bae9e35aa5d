"""Every classifier method explains a segmenter's region (issue 22): the score is the sum of a
class's logits over a mask (pytorch-grad-cam's ``SemanticSegmentationTarget``), by default the
class's predicted region. The inline segmenter's logits are the image's channels at half
resolution, so a class's region score depends on that region's pixels only."""

from __future__ import annotations

import numpy as np
import pytest
from test_tasks import segmenter, scene

import onnxviz as ov
from onnxviz.errors import TargetError
from onnxviz.explainers.boxes import RegionView

LIGHT = {"saliency": {}, "integrated_gradients": {"steps": 8}, "occlusion": {"patch": 4,
                                                                              "stride": 4},
         "rise": {"num_masks": 300, "cells": 8}, "gradient_x_input": {}}
BLUE = (20, 24, 24, 28)  # the blue block in the model input's pixels (y0, y1, x0, x1)


@pytest.fixture(scope="module")
def model():
    return ov.load(segmenter())


@pytest.mark.parametrize("method", list(LIGHT))
def test_a_regions_map_falls_on_the_region(model, method):
    (e,) = ov.explain(model, scene(), method=method, target="blue", **LIGHT[method])
    assert e.label == "blue" and e.region["area"] == pytest.approx(16 / 1024)
    y0, y1, x0, x1 = BLUE
    pos = np.clip(e.heatmap, 0, None)
    assert e.heatmap[y0:y1, x0:x1].max() == e.heatmap.max() > 0
    if method != "rise":  # RISE's map is an expectation of the score: positive everywhere
        assert pos[y0:y1, x0:x1].sum() > 0.8 * pos.sum(), method


def test_region_score_is_the_sum_of_logits_over_the_mask(model):
    x = model.normalize(model.to_pixels(scene()))
    logits = model.run(x, [model.score_output])[model.score_output][0]
    mask = np.zeros(logits.shape[1:], bool)
    mask[10:12, 12:14] = True
    view = RegionView(model, [2], mask[None], ["blue"])
    assert view.forward(x)[0, 0] == pytest.approx(logits[2][mask].sum(), rel=1e-6)
    grads, _, scores = view.gradients(x, np.ones((1, 1), np.float32), [model.input.name])
    d = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    # the segmenter is linear: a central difference with a step of 1 is exact up to rounding
    fd = (view.forward(x + d)[0, 0] - view.forward(x - d)[0, 0]) / 2
    assert float((grads[model.input.name] * d).sum()) == pytest.approx(float(fd), rel=1e-3)
    assert scores[0, 0] == pytest.approx(view.forward(x)[0, 0], rel=1e-6)


def test_default_targets_every_predicted_class_and_a_users_mask(model):
    found = ov.explain(model, scene(), method="saliency")
    assert sorted(e.label for e in found) == ["blue", "red"]  # green predicted nowhere
    mask = np.zeros((64, 96), bool)
    mask[40:48, 72:84] = True  # the blue block in the photo
    (e,) = ov.explain(model, scene(), method="saliency", target={"label": "blue", "mask": mask})
    assert e.region["area"] == pytest.approx(mask.mean())


@pytest.mark.parametrize("target, words", [
    ({"label": "blue", "mask": np.ones((10, 10), bool)}, "the image is 64x96"),
    ({"label": "purple", "mask": np.ones((64, 96), bool)}, "unknown class 'purple'"),
    ("green", "the region of 'green' is empty"),
])
def test_bad_region_targets_are_one_line(model, target, words):
    with pytest.raises(TargetError, match=words):
        ov.explain(model, scene(), method="saliency", target=target)
