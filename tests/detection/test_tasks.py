"""Detectors and segmenters are recognised at load and predict boxes and class maps (issue 22).

On main a raw detector head ``[N, 4 + C, A]`` was read as ``(4 + C) x A`` classes and explained
as a classifier, without a word. The models here are inline graphs whose answer is known: each
4x4 cell of a 32x32 image is an anchor whose box is the cell and whose class scores are the
sigmoid of the cell's mean red, green and blue.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxviz as ov
from onnxviz.detection import Detections
from onnxviz.errors import ModelError, OptionError

S, CELL = 32, 4
G = S // CELL
LABELS = ["red", "green", "blue"]


def _cells() -> np.ndarray:
    """(1, 4, G, G): each cell's box as cx, cy, w, h in input pixels."""
    gy, gx = np.mgrid[:G, :G]
    return np.stack([gx * CELL + CELL / 2, gy * CELL + CELL / 2, np.full((G, G), CELL),
                     np.full((G, G), CELL)])[None].astype(np.float32)


def detector(layout: str = "yolov8", metadata: bool = False) -> onnx.ModelProto:
    nodes = [
        helper.make_node("AveragePool", ["x"], ["cell"], kernel_shape=[CELL, CELL],
                         strides=[CELL, CELL]),
        helper.make_node("Sub", ["cell", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["cls"]),
        helper.make_node("Conv", ["cell", "zero_w", "zero_b"], ["nothing"]),  # (N, 4, G, G) zeros
        helper.make_node("Add", ["nothing", "cells"], ["box"]),
    ]
    inits = [numpy_helper.from_array(np.float32(0.5), "half"),
             numpy_helper.from_array(np.float32(12.0), "gain"),
             numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.float32), "zero_w"),
             numpy_helper.from_array(np.zeros(4, np.float32), "zero_b"),
             numpy_helper.from_array(_cells(), "cells"),
             numpy_helper.from_array(np.array([0, -1, G * G], np.int64), "flat")]
    if layout == "yolov8":
        nodes += [helper.make_node("Concat", ["box", "cls"], ["head"], axis=1),
                  helper.make_node("Reshape", ["head", "flat"], ["out"])]
        out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4 + 3, G * G])
    else:  # yolov5: objectness = the cell's best class score, anchors first
        nodes += [helper.make_node("ReduceMax", ["cls"], ["obj"], axes=[1], keepdims=1),
                  helper.make_node("Concat", ["box", "obj", "cls"], ["head"], axis=1),
                  helper.make_node("Reshape", ["head", "flat"], ["flat_head"]),
                  helper.make_node("Transpose", ["flat_head"], ["out"], perm=[0, 2, 1])]
        out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", G * G, 5 + 3])
    g = helper.make_graph(nodes, "cells", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 3, S, S])], [out], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.metadata_props.add(key="onnxviz.preprocess", value=json.dumps({"preset": "unit"}))
    m.metadata_props.add(key="onnxviz.labels", value=json.dumps(LABELS))
    if metadata:
        m.metadata_props.add(key="onnxviz.task", value="detect")
        m.metadata_props.add(key="onnxviz.layout", value=layout)
    onnx.checker.check_model(m)
    return m


def segmenter() -> onnx.ModelProto:
    """Logits = the unit-scaled pixels at half resolution: the class of a pixel is its strongest
    channel."""
    g = helper.make_graph(
        [helper.make_node("AveragePool", ["x"], ["out"], kernel_shape=[2, 2], strides=[2, 2])],
        "seg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, S, S])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, S // 2, S // 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.metadata_props.add(key="onnxviz.preprocess", value=json.dumps({"preset": "unit"}))
    m.metadata_props.add(key="onnxviz.labels", value=json.dumps(LABELS))
    return m


def scene() -> np.ndarray:
    """A 64x96 photo (twice the input, three times wide): dark, with a red block over the input
    cell (row 1, col 2) and a blue block over the cell (row 5, col 6)."""
    img = np.full((S, S, 3), 10, np.uint8)
    img[4:8, 8:12] = (250, 10, 10)
    img[20:24, 24:28] = (10, 10, 250)
    return np.repeat(np.repeat(img, 2, axis=0), 3, axis=1)


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
def test_a_detector_is_recognised_and_predicts_boxes(layout):
    m = ov.load(detector(layout))
    assert (m.task, m.layout, m.num_classes) == ("detect", layout, 3)
    assert "detector of 3 classes" in repr(m)
    d = m.predict(scene())
    assert isinstance(d, Detections) and len(d) == 2
    assert d.labels == ["red", "blue"] or d.labels == ["blue", "red"]
    by = {lab: d.xyxy[k] for k, lab in enumerate(d.labels)}
    # the cells' boxes in the photo: x scaled by 3, y by 2
    np.testing.assert_allclose(by["red"], [8 * 3, 4 * 2, 12 * 3, 8 * 2], atol=1e-4)
    np.testing.assert_allclose(by["blue"], [24 * 3, 20 * 2, 28 * 3, 24 * 2], atol=1e-4)
    assert all(0.99 < c <= 1 for c in d.confidence)
    assert [r["label"] for r in d.records()] == d.labels


def test_no_detection_is_an_answer():
    m = ov.load(detector())
    d = m.predict(np.full((S, S, 3), 10, np.uint8))
    assert len(d) == 0 and d.records() == []
    many = m.predict([scene(), scene()], score_threshold=0.5, max_detections=1)
    assert [len(x) for x in many] == [1, 1]
    with pytest.raises(OptionError, match="score_threshold"):
        m.predict(scene(), score_threshold=2)


def test_metadata_and_arguments_say_the_task():
    m = ov.load(detector("yolov5", metadata=True))
    assert (m.task, m.layout) == ("detect", "yolov5")
    with pytest.warns(UserWarning, match="looks like 'yolov5'"):
        ov.load(detector("yolov5"), task="detect", layout="yolov8", labels=[str(k) for k in
                                                                             range(60)])
    with pytest.raises(ModelError, match="layout 'yolov5' needs a 3-D output"):
        ov.load(segmenter(), task="detect", layout="yolov5")
    with pytest.raises(ModelError, match="unknown task 'track'"):
        ov.load(detector(), task="track")


def test_an_ambiguous_3d_output_is_refused_in_one_line():
    g = helper.make_graph(
        [helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
         helper.make_node("Reshape", ["p", "shape"], ["out"])],
        "square", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, S, S])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 12])],
        [numpy_helper.from_array(np.array([0, 4, 12], np.int64), "shape")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    with pytest.raises(ModelError) as err:
        ov.load(m, preprocess="unit")
    text = str(err.value)
    assert "\n" not in text and "--task" in text and "--layout" in text and "[1, 4, 12]" in text


def test_a_segmenter_predicts_a_class_map():
    m = ov.load(segmenter())
    assert (m.task, m.num_classes) == ("segment", 3)
    s = m.predict(scene())
    assert s.class_map.shape == (64, 96)
    assert s.class_map[12, 30] == 0 and s.class_map[44, 78] == 2  # the red and the blue block
    assert list(s.areas)[0] == "red"  # the dark background is reddish-equal: argmax picks red
    assert sum(s.areas.values()) == pytest.approx(1.0)
    assert {r["label"] for r in s.records()} == set(s.areas)


def test_explainers_built_on_a_detector_point_to_box_targets():
    from onnxviz.explainers import get

    m = ov.load(detector())
    for method in ("gradcam", "occlusion", "saliency"):
        with pytest.raises(OptionError, match=f"{method} explains class scores; this model is a "
                                              "yolov8 detector of 3 classes: onnxviz.explain"):
            get(method)(m)
    with pytest.raises(OptionError, match="explains its regions"):
        get("saliency")(ov.load(segmenter()))


def test_classifiers_are_unchanged(effnet_path):
    m = ov.load(effnet_path)
    assert (m.task, m.layout, m.num_classes) == ("classify", None, 1000)
    with pytest.raises(OptionError, match="options of detectors"):
        m.predict("skimage:chelsea", score_threshold=0.5)


def _cli(argv, capsys):
    from tests.cli.viz_cli_helpers import cli

    return cli(argv, capsys)


def test_cli_predict_lists_detections(tmp_path, capsys):
    import cv2

    path = tmp_path / "det.onnx"
    onnx.save(detector(), str(path))
    photo = tmp_path / "scene.png"
    cv2.imwrite(str(photo), scene()[..., ::-1])
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((S, S, 3), 10, np.uint8))
    code, out, err = _cli(["predict", path, photo, empty], capsys)
    assert code == 0, err
    assert "red (0)  box [24.0, 8.0, 36.0, 16.0]" in out and "blue (2)" in out
    assert "no detection scoring 0.25 or more" in out
    code, out, err = _cli(["predict", path, photo, empty, "--json"], capsys)
    records = json.loads(out)
    assert code == 0 and len(records) == 2  # one record per detection; none for the empty one
    assert {r["label"] for r in records} == {"red", "blue"}
    assert all(set(r) == {"image", "box", "label", "class", "score"} for r in records)
    code, out, _ = _cli(["predict", path, photo, "--max-detections", "1", "--json"], capsys)
    assert len(json.loads(out)) == 1


def test_cli_task_and_layout_flags(tmp_path, capsys):
    path = tmp_path / "seg.onnx"
    onnx.save(segmenter(), str(path))
    code, out, err = _cli(["predict", path, "skimage:astronaut"], capsys)
    assert code == 0 and "% of the image" in out, err
    code, _, err = _cli(["predict", path, "skimage:astronaut", "--layout", "yolov8"], capsys)
    assert code == 2 and "layout='yolov8' is for detectors" in err
    code, _, err = _cli(["predict", path, "skimage:astronaut", "--task", "detect"], capsys)
    assert code == 2 and "--task" in err and err.count("\n") == 1
