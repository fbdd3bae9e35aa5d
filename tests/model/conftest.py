"""Small ONNX graphs built inline for the model tests."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def tiny_cnn(*, batch="N", layout="NCHW", softmax=False, classes=4, channels=3, size=8,
             opset=17, seed=0, reshape_batch1=False, metadata=None) -> onnx.ModelProto:
    """Conv(3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm [-> Softmax]."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((6, channels, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b")
    fw = numpy_helper.from_array(rng.standard_normal((classes, 6)).astype(np.float32), "fw")
    fb = numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32), "fb")
    nodes, inits = [], [w, b, fw, fb]
    x = "x"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2],
                                      name="to_nchw"))
        x = "x_nchw"
    nodes += [
        helper.make_node("Conv", [x, "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
    ]
    if reshape_batch1:  # a hard-coded batch of 1, as old exporters wrote
        inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"))
    else:
        nodes.append(helper.make_node("Flatten", ["p"], ["f"], name="flatten"))
    out = "prob" if softmax else "logits"
    nodes.append(helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1, name="fc"))
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["prob"], axis=1, name="softmax"))
    shape = [batch, channels, size, size] if layout == "NCHW" else [batch, size, size, channels]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="onnxviz-tests")
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, k: v})
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def make_cnn():
    return tiny_cnn
