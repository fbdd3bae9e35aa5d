"""Small inputs for the CLI tests: a tiny ONNX classifier built inline and a few image files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LABELS = ["red", "green", "blue"]
SIZE = 32


def tiny_model_proto(seed: int = 0) -> onnx.ModelProto:
    """Conv(3->4, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(4->3) -> Softmax.

    32x32 RGB input in [0, 1] (metadata preset ``unit``), three labelled classes, dynamic batch:
    every method runs on it in milliseconds, CAM included (GAP -> dense head).
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 4).astype(np.float32)
    fw = rng.normal(0, 1.0, (3, 4)).astype(np.float32)
    fb = np.zeros(3, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fw, "fw"), (fb, "fb"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (("onnxviz.preprocess", {"preset": "unit"}), ("onnxviz.labels", LABELS)):
        model.metadata_props.add(key=k, value=json.dumps(v))
    onnx.checker.check_model(model)
    return model


def write_tiny_model(path: Path) -> Path:
    onnx.save(tiny_model_proto(), str(path))
    return path


def photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """A smooth RGB test image (not the model's size, so overlays must be resized)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


#: Light options per method so each runs in well under a second on the tiny model.
LIGHT = {
    "occlusion": ["--patch", "8", "--stride", "8"],
    "lime": ["--num-samples", "40", "--segmentation", "slic", "--n-segments", "9"],
    "rise": ["--num-masks", "40"],
    "smoothgrad": ["--samples", "3"],
    "integrated_gradients": ["--steps", "4"],
}


def cli(argv, capsys):
    """``onnxviz ARGV`` in this process: ``(exit status, stdout, stderr)``."""
    from onnxviz.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
