"""The cascading randomisation on ONNX files: which tensors change at each stage, and answers known
for a linear model (its saliency map is its weights, so random weights decorrelate it)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxviz as ov
from onnxviz import metrics
from onnxviz.errors import OptionError
from onnxviz.metrics.randomisation import cascade, layers
from tests.metrics.metric_models import explanation, image, linear_model


def mlp() -> onnx.ModelProto:
    """x (N, 3, 4, 4) -> Flatten -> MatMul + Add -> Relu -> Gemm -> logits (3 classes)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.1, (48, 8)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.1, (3, 8)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b2")]
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "w1"], ["m"], name="fc1"),
             helper.make_node("Add", ["m", "b1"], ["a"], name="fc1_bias"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], name="fc2", transB=1)]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 3, 4, 4])], [helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, ["N", 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.metadata_props.add(key="onnxviz.preprocess", value=json.dumps({"preset": "unit"}))
    return m


def test_layers_and_cascade_from_the_top():
    proto = mlp()
    assert layers(proto) == [("fc1", ["w1", "b1"]), ("fc2", ["w2", "b2"])]
    orig = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    stages = list(cascade(proto, stages=5, seed=1))
    assert [(cut, name) for cut, name, _ in stages] == [(1, "fc2"), (2, "fc1")]
    got = [{t.name: numpy_helper.to_array(t) for t in p.graph.initializer} for *_, p in stages]
    assert np.array_equal(got[0]["w1"], orig["w1"]) and np.array_equal(got[0]["b1"], orig["b1"])
    assert not np.array_equal(got[0]["w2"], orig["w2"])
    assert np.array_equal(got[0]["w2"], got[1]["w2"])  # the cascade keeps earlier draws
    assert not np.array_equal(got[1]["w1"], orig["w1"])
    rms = np.sqrt(np.mean(orig["w1"] ** 2))
    assert np.std(got[1]["w1"]) == pytest.approx(rms, rel=0.2)


def test_saliency_of_a_linear_model_decorrelates():
    model = ov.load(linear_model("NCHW"), threads=1)
    e = ov.explain(model, image(), method="saliency", target=1)
    s = metrics.get("randomisation")(model, e, stages=3, seed=0)
    assert s.details["layers"] == [1] and s.details["names"] == ["matmul"]
    assert abs(s.value) < 0.3  # a map of independent random weights


def test_a_map_that_ignores_the_weights_stays_correlated(monkeypatch):
    """An "edge detector" method: its map is the image's, whatever the weights."""
    model = ov.load(mlp(), threads=1)
    img = np.random.default_rng(2).integers(0, 256, (4, 4, 3)).astype(np.uint8)

    class Edges:
        def __init__(self, model, **params):
            pass

        def explain(self, images, target=None):
            return [explanation(np.abs(np.diff(np.asarray(images[0], float).sum(-1), axis=0,
                                               prepend=0)), images[0], target)]

    monkeypatch.setattr("onnxviz.explainers.registry.get", lambda name: Edges)
    e = Edges(model).explain([img], 0)[0]
    s = metrics.get("randomisation")(model, e, stages=2)
    assert s.details["layers"] == [1, 2]
    np.testing.assert_allclose(s.details["y"], 1.0)


def test_an_int8_file_has_nothing_to_randomise():
    proto = mlp()
    for t in proto.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(np.zeros(tuple(t.dims), np.int8), t.name))
    with pytest.raises(OptionError, match="no float weights"):
        next(cascade(proto, 3, 0))
