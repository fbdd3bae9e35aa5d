"""Two small CNNs written inline for the blank-map tests: one whose ReLUs are all dead, and one to
quantize with ``onnxruntime.quantization`` (its logits leave the range calibrated on dim images)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 16


def cnn(bias: float = 0.0, seed: int = 0, pad: bool = False) -> onnx.ModelProto:
    """Conv 3->8 -> Relu -> Conv 8->8 -> Relu -> GlobalAveragePool -> Flatten -> Gemm 8->4, input
    ``x`` (N, 3, 16, 16), output ``logits``; ``bias`` is added to the first Conv's bias (a large
    negative one kills every ReLU: the gradient vanishes everywhere); ``pad``: the second Conv's
    padding is a Pad node before it (as TensorFlow exports "same" padding)."""
    rng = np.random.default_rng(seed)
    w = {"W1": rng.normal(0, 0.5, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8) + bias,
         "W2": rng.normal(0, 0.3, (8, 8, 3, 3)), "b2": rng.normal(0, 0.1, 8),
         "F": rng.normal(0, 1.0, (8, 4)), "c": rng.normal(0, 0.1, 4)}
    conv2 = [helper.make_node("Pad", ["r1", "pads"], ["r1p"], name="pad"),
             helper.make_node("Conv", ["r1p", "W2", "b2"], ["c2"], name="conv2")] if pad else [
             helper.make_node("Conv", ["r1", "W2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2")]
    nodes = [helper.make_node("Conv", ["x", "W1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             *conv2,
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "F", "c"], ["logits"], name="fc")]
    g = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
        + [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")] * pad)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    helper.set_model_props(m, {"onnxviz.preprocess": '{"preset": "unit"}'})
    return m


def images(n: int, low: int, high: int, seed: int) -> list[np.ndarray]:
    """``n`` random 16x16 RGB uint8 images with values in [low, high)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(low, high, (SIZE, SIZE, 3)).astype(np.uint8) for _ in range(n)]
