"""ODAM of a box's coordinates (``box_output``), not only of its score (issue 22): against torch
on the SSD-lite of ``arch_models.py``, and the coordinate views of both raw-head layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnxviz as ov
from onnxviz.explainers.boxes import BoxView

from tests.detection.arch_models import ssd  # noqa: F401
from tests.detection.arch_models import photo as _photo


@pytest.mark.parametrize("output, column", [("x0", 0), ("y1", 3), ("w", None), ("cy", None)])
def test_odam_of_a_box_coordinate_equals_torch(ssd, output, column):
    """ODAM with ``box_output`` a coordinate: the explained value equals the torch network's,
    its input gradient equals torch.autograd's, and the map at the box's level equals
    ``ReLU(sum_k dv/dA_k * A_k)`` computed with torch hooks on the same module."""
    net, _, path = ssd
    m = ov.load(path)
    photo = _photo(64, 64)
    d = m.predict(photo, score_threshold=0.0)
    k = 0
    anchor = int(d.anchor[k])
    x = m.preprocess(photo)

    def value(boxes):
        b = boxes[0, anchor]
        return {"w": b[2] - b[0], "cy": (b[1] + b[3]) / 2}.get(output, b[column] if column
                                                                  is not None else None)

    (e,) = ov.explain(m, photo, "odam", target=k, box_output=output, score_threshold=0.0)
    assert e.extras["box_output"] == output and e.params["box_output"] == output
    layer = e.extras["layer"]
    module = dict(net.named_modules())[layer]
    seen = {}
    hook = module.register_forward_hook(lambda mod, a, o: seen.__setitem__("a", o))
    xt = torch.from_numpy(x).requires_grad_(True)
    v = value(net(xt)[0])
    hook.remove()
    np.testing.assert_allclose(e.score, float(v.detach()), rtol=1e-5, atol=1e-4)
    grad_a, grad_x = torch.autograd.grad(v, [seen["a"], xt])
    want = torch.relu((grad_a * seen["a"]).sum(1))[0].detach().numpy()
    got = np.asarray(e.raw).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(np.abs(want).max(), 1e-6))
    view = BoxView(m, [anchor], [int(d.class_id[k])], ["box"], output)
    grads, _, _ = view.gradients(x, np.ones((1, 1), np.float32), [m.input.name])
    gx = grad_x.numpy()
    np.testing.assert_allclose(grads[m.input.name], gx, rtol=0, atol=1e-4 * np.abs(gx).max())


def test_odam_box_output_is_checked_and_declared(ssd):
    from onnxviz.explainers.registry import get

    assert get("odam").option_specs()["box_output"].choices == (
        "score", "cx", "cy", "w", "h", "x0", "y0", "x1", "y1")
    m = ov.load(ssd[2])
    with pytest.raises(ov.OptionError, match="box_output must be one of") as e:
        ov.explain(m, _photo(64, 64), "odam", box_output="area", score_threshold=0.0)
    assert "\n" not in str(e.value)
    (plain,) = ov.explain(m, _photo(64, 64), "odam", target=0, score_threshold=0.0)
    assert "box_output" not in plain.extras and "box_output" not in plain.params


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
def test_box_coordinates_are_read_from_the_head_in_both_layouts(layout):
    """A box view of coordinates gives the decoded box's values (inline cell detector)."""
    from onnxviz.detection import decode

    from tests.detection.test_tasks import detector

    m = ov.load(detector(layout))
    x = m.preprocess(_photo(32, 32))
    cands = decode(m.run(x, [m.score_output])[m.score_output][0], layout)
    anchors, classes = [5, 17, 42], [0, 2, 1]
    xyxy = cands.xyxy[anchors].astype(np.float64)
    want = {"x0": xyxy[:, 0], "y0": xyxy[:, 1], "x1": xyxy[:, 2], "y1": xyxy[:, 3],
            "cx": xyxy[:, [0, 2]].mean(1), "cy": xyxy[:, [1, 3]].mean(1),
            "w": xyxy[:, 2] - xyxy[:, 0], "h": xyxy[:, 3] - xyxy[:, 1],
            "score": cands.probs[anchors, classes]}
    for output, values in want.items():
        view = BoxView(m, anchors, classes, ["a", "b", "c"], output)
        np.testing.assert_allclose(view.forward(x)[0], values, rtol=1e-6, atol=1e-5,
                                   err_msg=output)
