"""Graphs that end in NonMaxSuppression (layout ``boxes``), on inline graphs whose answer is known.

Each 2x2 cell of an 8x8 image is an anchor: its box is the cell grown by a margin that depends
on the cell (so boxes of neighbours overlap by different amounts), its class scores are the
sigmoid of the cell's mean red, green and blue. The graph feeds NMS either corners
(``center_point_box=0``) or centres and sizes (``1``) and gathers the post-NMS boxes, labels and
scores, as SSD exports do.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxviz as ov
from onnxviz.errors import ModelError

S, CELL = 8, 2
G = S // CELL
A = G * G


def _cell_boxes() -> np.ndarray:
    """(A, 4) x0, y0, x1, y1 in input pixels, each cell grown by its own margin."""
    gy, gx = np.mgrid[:G, :G]
    margin = 0.25 + 0.5 * ((gx + 2 * gy) % 3)
    x0, y0 = gx * CELL - margin, gy * CELL - margin
    return np.stack([x0, y0, x0 + CELL + 2 * margin, y0 + CELL + 2 * margin],
                    axis=-1).reshape(A, 4).astype(np.float32)


def _as_given(xyxy: np.ndarray, centre: int) -> np.ndarray:
    if not centre:
        return xyxy
    return np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def nms_graph(centre: int, *, iou: float = 0.2, threshold: float = 0.3) -> onnx.ModelProto:
    boxes = _as_given(_cell_boxes(), centre)[None]  # (1, A, 4)
    nodes = [
        helper.make_node("AveragePool", ["x"], ["cell"], kernel_shape=[CELL, CELL],
                         strides=[CELL, CELL]),
        helper.make_node("Sub", ["cell", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["prob"]),
        helper.make_node("Reshape", ["prob", "flat"], ["scores_in"]),  # (N, 3, A)
        helper.make_node("Conv", ["cell", "zero_w", "zero_b"], ["nothing"]),  # (N, 4, G, G) 0s
        helper.make_node("Reshape", ["nothing", "rows"], ["nothing_rows"]),
        helper.make_node("Transpose", ["nothing_rows"], ["nothing_t"], perm=[0, 2, 1]),
        helper.make_node("Add", ["nothing_t", "cell_boxes"], ["boxes_in"]),  # (N, A, 4)
        helper.make_node("NonMaxSuppression", ["boxes_in", "scores_in", "max_out", "iou",
                                               "thr"], ["selected"], name="the_nms",
                         center_point_box=centre),
        helper.make_node("Gather", ["selected", "c1"], ["labels"], axis=1),
        helper.make_node("GatherND", ["scores_in", "selected"], ["scores"]),
        helper.make_node("Gather", ["selected", "c02"], ["which"], axis=1),
        helper.make_node("GatherND", ["boxes_in", "which"], ["boxes"]),
    ]
    inits = [numpy_helper.from_array(np.float32(0.5), "half"),
             numpy_helper.from_array(np.float32(12.0), "gain"),
             numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.float32), "zero_w"),
             numpy_helper.from_array(np.zeros(4, np.float32), "zero_b"),
             numpy_helper.from_array(np.array([0, 3, A], np.int64), "flat"),
             numpy_helper.from_array(np.array([0, 4, A], np.int64), "rows"),
             numpy_helper.from_array(boxes, "cell_boxes"),
             numpy_helper.from_array(np.array([A], np.int64), "max_out"),
             numpy_helper.from_array(np.array([iou], np.float32), "iou"),
             numpy_helper.from_array(np.array([threshold], np.float32), "thr"),
             numpy_helper.from_array(np.array(1, np.int64), "c1"),
             numpy_helper.from_array(np.array([0, 2], np.int64), "c02")]
    g = helper.make_graph(nodes, "nms", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 3, S, S])], [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["K", 4]),
        helper.make_tensor_value_info("labels", TensorProto.INT64, ["K"]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["K"])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.metadata_props.add(key="onnxviz.preprocess", value=json.dumps({"preset": "unit"}))
    m.metadata_props.add(key="onnxviz.labels", value=json.dumps(["red", "green", "blue"]))
    onnx.checker.check_model(m)
    return m


def _scene() -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.random((S, S, 3)) * 255).astype(np.uint8)


def _reference(photo):
    """NMS per class written out: (anchors, classes, scores) of the inline graph, best first."""
    x = photo.astype(np.float64) / 255
    cells = x.reshape(G, CELL, G, CELL, 3).mean(axis=(1, 3)).reshape(A, 3)
    prob = 1 / (1 + np.exp(-12 * (cells - 0.5)))
    boxes = _cell_boxes().astype(np.float64)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    kept = []
    for c in range(3):
        order = [a for a in np.argsort(-prob[:, c], kind="stable") if prob[a, c] > 0.3]
        alive: list[int] = []
        for a in order:
            lt = np.maximum(boxes[a, :2], boxes[alive, :2])
            rb = np.minimum(boxes[a, 2:], boxes[alive, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
            if not alive or np.all(inter / (area[a] + area[alive] - inter) <= 0.2):
                alive.append(a)
        kept += [(a, c, prob[a, c]) for a in alive]
    kept.sort(key=lambda t: -t[2])
    assert len(kept) < int((prob > 0.3).sum())  # NMS dropped some candidates
    return kept


@pytest.mark.parametrize("centre", [0, 1])
def test_boxes_layout_head_and_predictions(centre):
    m = ov.load(nms_graph(centre))
    assert (m.task, m.layout, m.num_classes) == ("detect", "boxes", 3)
    assert m.nms.node == "the_nms" and m.nms.boxes == "boxes_in"
    photo = _scene()
    head = m.run(m.preprocess(photo), [m.score_output])[m.score_output][0]  # (4 + 3, A)
    xyxy = _cell_boxes()
    np.testing.assert_allclose(head[:4].T, _as_given(xyxy, 1), rtol=1e-6, atol=1e-6)
    want = _reference(photo)
    d = m.predict(photo, score_threshold=0.0, max_detections=100)
    assert 3 < len(d) == len(want)
    np.testing.assert_array_equal(d.anchor, [a for a, _, _ in want])
    np.testing.assert_array_equal(d.class_id, [c for _, c, _ in want])
    np.testing.assert_allclose(d.confidence, [p for _, _, p in want], rtol=1e-5)
    np.testing.assert_allclose(d.xyxy, xyxy[d.anchor], rtol=1e-6, atol=1e-5)
    # the photo at twice the size: the same boxes, twice as large
    big = np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)
    np.testing.assert_allclose(m.predict(big, score_threshold=0.0, max_detections=100).xyxy,
                               d.xyxy * 2, rtol=1e-6, atol=1e-5)


def test_box_scores_of_boxes_layout_are_the_elements_nms_reads():
    """Saliency of a detection is the gradient of ``scores_in[c, a]``: finite differences."""
    m = ov.load(nms_graph(0))
    photo = _scene()
    d = m.predict(photo, score_threshold=0.0)
    (e,) = ov.explain(m, photo, "saliency", target=0, reduce="signed", score_threshold=0.0)
    assert e.extras["explained_tensor"] == "scores_in" and e.extras["nms_node"] == "the_nms"
    np.testing.assert_allclose(e.score, d.confidence[0], rtol=1e-6)
    a, c = int(d.anchor[0]), int(d.class_id[0])
    x = m.preprocess(photo).astype(np.float64)
    seed = np.zeros((1, (4 + 3) * A), np.float32)
    seed[0, (4 + c) * A + a] = 1
    grads, _, _ = m.gradients(x.astype(np.float32), seed, [m.input.name])
    grad = grads[m.input.name][0]
    cy, cx = divmod(a, G)
    prob = float(d.confidence[0])
    # d sigmoid(12 (mean - 0.5)) / d pixel = 12 p (1 - p) / 4 for the cell's 4 pixels of class c
    want = np.zeros_like(grad)
    want[c, cy * CELL:(cy + 1) * CELL, cx * CELL:(cx + 1) * CELL] = 12 * prob * (1 - prob) / 4
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)


def test_boxes_layout_needs_nms():
    from tests.detection.test_tasks import detector

    with pytest.raises(ModelError, match="has none") as e:
        ov.load(detector("yolov8"), layout="boxes")
    assert "\n" not in str(e.value)
    m = ov.load(nms_graph(0), task="detect", layout="boxes")  # said, as found without options
    assert (m.layout, m.nms.scores) == ("boxes", "scores_in")
