"""Every classifier method explains a detector's boxes through the box view (issue 22).

The inline detector of ``test_tasks`` scores each 4x4 cell by its mean colour, so the evidence
for a box is exactly its own cell: each map must peak inside its own box and put (almost) none of
its positive mass in the other box. The view's scores and gradients are checked against the raw
head and against finite differences of the box score.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_tasks import CELL, detector, scene

import onnxviz as ov
from onnxviz.errors import TargetError
from onnxviz.explainers.boxes import BoxView

LIGHT = {
    "occlusion": {"patch": 4, "stride": 4},
    "rise": {"num_masks": 300, "cells": 8},
    "drise": {"num_masks": 300, "cells": 8},
    "saliency": {},
    "odam": {},  # each box at its feature level: the cells here
    "gradcam": {},
    "hirescam": {},
    "integrated_gradients": {"steps": 8},
    "gradient_x_input": {},
    "smoothgrad": {"samples": 4},
    "deeplift": {},
    # a superpixel filled with its own mean colour keeps its cell's mean, all this detector sees
    "kernelshap": {"num_samples": 400, "segmentation": "grid", "n_segments": 64, "fill": "black"},
    "lime": {"num_samples": 60, "segmentation": "grid", "n_segments": 64, "fill": "black"},
}
#: the two boxes in the model input's pixels (y0, y1, x0, x1): red cell (1, 2), blue cell (5, 6)
CELLS = {"red": (4, 8, 8, 12), "blue": (20, 24, 24, 28)}


@pytest.fixture(scope="module")
def model():
    return ov.load(detector())


def _inside(heat, cell) -> bool:
    """The map's maximum is attained inside ``cell`` (superpixel maps are flat over a cell)."""
    y0, y1, x0, x1 = cell
    return heat[y0:y1, x0:x1].max() == heat.max() and heat.max() > heat.min()


@pytest.mark.parametrize("method", list(LIGHT))
def test_each_box_map_falls_on_its_own_object(model, method):
    found = ov.explain(model, scene(), method=method, **LIGHT[method])
    assert sorted(e.label for e in found) == ["blue", "red"]
    for e in found:
        assert e.heatmap.shape == (32, 32) and not e.extras.get("blank")
        assert _inside(e.heatmap, CELLS[e.label]), (method, e.label)
        other = CELLS["blue" if e.label == "red" else "red"]
        pos = np.clip(e.heatmap, 0, None)
        y0, y1, x0, x1 = other
        assert pos[y0:y1, x0:x1].sum() < 0.2 * pos.sum(), (method, e.label)
        assert e.score == pytest.approx(0.997, abs=2e-3)
        assert len(e.box) == 4 and "anchor" in e.extras


def test_odam_is_hirescam_of_the_box_at_its_level(model):
    from onnxviz.explainers.boxes import feature_levels

    assert feature_levels(model) == [(0, 64, "cell")]
    odam = ov.explain(model, scene(), method="odam")
    hires = ov.explain(model, scene(), method="hirescam", layer="cell")
    for a, b in zip(odam, hires):
        assert a.extras["layer"] == "cell" and a.label == b.label
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-6, atol=1e-9)
    with pytest.raises(ov.OptionError, match="odam explains the boxes of object detectors"):
        ov.explain(ov.load(detector_free()), scene()[:32, :32], method="odam")


def detector_free():
    """A classifier: the bundled shapes CNN."""
    from pathlib import Path

    return Path(ov.__file__).parent / "data" / "models" / "shapes_cnn.onnx"


def test_view_scores_and_gradients_are_the_heads(model):
    px = model.to_pixels(scene())
    x = model.normalize(px)
    raw = model.run(x, [model.score_output])[model.score_output][0]
    anchors, classes = [1 * 8 + 2, 5 * 8 + 6], [0, 2]
    view = BoxView(model, anchors, classes, ["a", "b"])
    np.testing.assert_allclose(view.forward(x)[0], [raw[4 + 0, 10], raw[4 + 2, 46]], rtol=1e-6)
    # finite differences of box 1's score along a random direction
    grads, _, scores = view.gradients(x, np.array([[0.0, 1.0]], np.float32), [model.input.name])
    g = grads[model.input.name]
    d = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    eps = 1e-3
    fd = (view.forward(x + eps * d)[0, 1] - view.forward(x - eps * d)[0, 1]) / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(float(fd), rel=2e-2)
    np.testing.assert_allclose(scores, view.forward(x), rtol=1e-6)


def test_results_do_not_change_with_batch_size(model):
    a = ov.explain(model, scene(), method="integrated_gradients", steps=8, batch_size=1)
    b = ov.explain(model, scene(), method="integrated_gradients", steps=8, batch_size=16)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p.heatmap, q.heatmap, rtol=1e-5, atol=1e-7)


def test_a_users_box_is_matched_to_its_candidate(model):
    # the red cell in the photo (x * 3, y * 2), drawn a little off: matched by IoU
    (e,) = ov.explain(model, scene(), method="saliency",
                      target={"box": [25, 9, 37, 17], "label": "red"})
    assert e.label == "red" and e.extras["anchor"] == 1 * 8 + 2
    assert _inside(e.heatmap, CELLS["red"])
    (one,) = ov.explain(model, scene(), method="saliency", target=1)
    assert one.box in ([24.0, 8.0, 36.0, 16.0], [72.0, 40.0, 84.0, 48.0])


@pytest.mark.parametrize("target, words", [
    ({"box": [0, 0, 500, 10], "label": "red"}, "outside the 96x64 image"),
    ({"box": [25, 9, 37, 17], "label": "purple"}, "unknown class 'purple'"),
    ({"box": [25, 9, 25, 17], "label": "red"}, "is empty"),
    (7, "detection 7 does not exist"),
    ("red", "a detector's target is None"),
])
def test_bad_box_targets_are_one_line(model, target, words):
    with pytest.raises(TargetError, match=words) as err:
        ov.explain(model, scene(), method="saliency", target=target)
    assert "\n" not in str(err.value)


def test_nothing_detected_says_so(model):
    with pytest.raises(TargetError, match="finds nothing scoring 0.25"):
        ov.explain(model, np.full((32, 32, 3), 10, np.uint8), method="saliency")
    with pytest.raises(TargetError, match="finds nothing scoring 0.999"):
        ov.explain(model, scene(), method="saliency", score_threshold=0.999)
    found = ov.explain(model, scene(), method="saliency", score_threshold=0.9, max_detections=1)
    assert len(found) == 1 and CELL == 4


def test_incremental_occlusion_of_a_box_is_the_full_one(model):
    """Incremental occlusion runs the head's raw output; the box view picks its boxes from it."""
    full = ov.explain(model, scene(), method="occlusion", patch=4, stride=2, incremental=False)
    inc = ov.explain(model, scene(), method="occlusion", patch=4, stride=2, incremental=True)
    assert inc[0].extras["incremental"]["used"], inc[0].extras["incremental"]
    for a, b in zip(full, inc):
        np.testing.assert_allclose(b.heatmap, a.heatmap, rtol=0,
                                   atol=1e-5 * np.abs(a.heatmap).max())
