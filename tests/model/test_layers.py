"""Friendly layer names per exporter, layer lookup with suggestions, and exposed tensors."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxviz as ov
from onnxviz.model.layers import _join_module_path, friendly


def _load(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ov.load(path, **kw)


def _names(m):
    return [lay.name for lay in m.layers()]


def test_every_layer_is_4d(third_party_path):
    m = _load(third_party_path)
    layers = m.layers()
    assert layers and all(len(lay.shape) == 4 for lay in layers)
    assert len({lay.name for lay in layers}) == len(layers)
    for lay in layers:
        assert m.layer(lay.name) == lay and m.layer(lay.tensor) == lay


def test_tf2onnx_keras_layer_names(fixtures_dir):
    m = _load(fixtures_dir / "tf2onnx_cifar_small.onnx")
    names = _names(m)
    assert {"conv2d", "conv2d_1"} <= set(names)
    # the Keras layer is its activation output (Conv2D(activation="relu")), in NCHW after tf2onnx
    assert m.layer("conv2d").tensor == "sequential/conv2d/Relu:0"
    assert m.layer("conv2d_1").op_type == "Relu" and m.layer("conv2d_1").shape[1:] == (16, 6, 6)
    assert m.layer("sequential/conv2d/Relu").tensor == "sequential/conv2d/Relu:0"


def test_matlab_layer_names(fixtures_dir):
    m = _load(fixtures_dir / "matlab_rul_cnn.onnx")
    assert _names(m)[:4] == ["conv_1", "relu_1", "conv_2", "relu_2"]
    assert m.layer("relu_4").shape[1:] == m.shape_of(m.layer("relu_4").tensor)[1:]


def test_old_pytorch_node_names(fixtures_dir):
    m = _load(fixtures_dir / "pytorch_cifar_resnet_2b.onnx")
    assert _names(m)[:3] == ["Conv_0", "Relu_1", "Conv_2"]


def test_torchscript_module_paths(tmp_path):
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv1(x))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = torch.nn.Sequential(Block(3, 4), Block(4, 4))
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.layer1(x).mean((2, 3)))

    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}})
    m = ov.load(path, preprocess="unit")
    assert _names(m) == ["layer1.0.conv1", "layer1.0.relu", "layer1.1.conv1", "layer1.1.relu"]
    assert m.layer("layer1.0.conv1").tensor == "/layer1/layer1.0/conv1/Conv_output_0"
    assert m.layer("/layer1/layer1.1/relu/Relu").name == "layer1.1.relu"


def test_dynamo_name_scopes():
    node = helper.make_node("Conv", ["x", "w"], ["conv2d_1"], name="node_conv2d_1")
    helper.set_metadata_props(node, {"pkg.torch.onnx.name_scopes":
                                     "['', 'layer1', 'layer1.1', 'layer1.1.conv1', 'conv2d_1']"})
    assert friendly(node, "pytorch") == "layer1.1.conv1"
    assert _join_module_path(["features", "features.0", "block", "conv"]) == "features.0.block.conv"


def test_shared_friendly_names_are_disambiguated(make_cnn):
    proto = make_cnn()
    for node in proto.graph.node:
        node.name = {"conv": "model/block/conv", "relu": "model/block/relu"}.get(node.name,
                                                                                 node.name)
    proto.producer_name = "tf2onnx"
    m = ov.load(proto, preprocess="unit")
    names = _names(m)
    assert names[:2] == ["block/Conv", "block"]  # the last node of a layer is the layer
    assert m.layer("block").op_type == "Relu" and m.layer("model/block/conv").op_type == "Conv"


def test_unknown_layer_suggests_close_names(fixtures_dir):
    m = _load(fixtures_dir / "matlab_rul_cnn.onnx")
    with pytest.raises(ov.LayerError, match="did you mean") as e:
        m.layer("relu_9")
    assert "relu_1" in e.value.suggestions or "relu_4" in e.value.suggestions
    with pytest.raises(ov.LayerError) as e:
        m.layer("conv")
    assert "conv_1" in e.value.suggestions
    with pytest.raises(ov.LayerError, match="unknown layer 'zzzzzz'; known: conv_1"):
        m.layer("zzzzzz")


def test_non_4d_tensors_by_exact_name(fixtures_dir):
    m = _load(fixtures_dir / "tf2onnx_cifar_small.onnx")
    dense = m.layer("sequential/dense/Relu:0")
    assert dense.op_type == "Relu" and len(dense.shape) == 2
    assert "sequential/dense/Relu:0" not in [lay.tensor for lay in m.layers()]


def test_run_exposes_intermediate_tensors(fixtures_dir):
    """Exposed activations equal the reference evaluator's on the extracted sub-graph."""
    from onnx.reference import ReferenceEvaluator

    m = _load(fixtures_dir / "tf2onnx_cifar_small.onnx")
    x = m.preprocess(["skimage:chelsea", "skimage:coffee"])
    got = m.run(x, ["conv2d", "sequential/conv2d_1/Relu:0", m.score_output])
    sub = onnx.utils.Extractor(m.proto).extract_model([m.input.name], ["sequential/conv2d/Relu:0"])
    want = ReferenceEvaluator(sub).run(None, {m.input.name: x})[0]
    np.testing.assert_allclose(got["conv2d"], want, rtol=1e-4, atol=1e-5)
    assert got["sequential/conv2d_1/Relu:0"].shape == (2, 16, 6, 6)
    np.testing.assert_allclose(got[m.score_output], m.forward(x), rtol=1e-6)
    assert m.run(x, ["conv2d"], batch_size=1)["conv2d"].shape == want.shape
    with pytest.raises(ov.LayerError):
        m.run(x, ["no_such_tensor"])


def test_keras3_scope_suffix_is_dropped(make_cnn, fixtures_dir):
    """Keras 3's exporter names scopes `model_1/layer_1/op`; the Keras layer is `layer`."""
    proto = make_cnn()
    names = {"conv": "mynet_1/conv2d_1/convolution", "relu": "mynet_1/conv2d_1/Relu",
             "pool": "mynet_1/gap_1/Mean", "flatten": "mynet_1/flatten_1/Reshape",
             "fc": "mynet_1/dense_1/MatMul"}
    for node in proto.graph.node:
        node.name = names[node.name]
    proto.producer_name = "tf2onnx"
    m = ov.load(proto, preprocess="unit")
    assert _names(m) == ["conv2d/Conv", "conv2d", "gap"]
    assert m.layer("conv2d").op_type == "Relu"
    # Keras 2 names keep their suffixes: `conv2d_1` is a real layer name there
    assert "conv2d_1" in _names(_load(fixtures_dir / "tf2onnx_cifar_small.onnx"))


def test_grad_reachable_flags(make_cnn, fixtures_dir):
    m = _load(fixtures_dir / "tf2onnx_cifar_small.onnx")
    assert all(lay.grad_reachable is None for lay in m.layers())
    assert all(lay.grad_reachable for lay in m.layers(grad=True))
    # Shrink has no gradient rule: layers before it cannot be reached, the one after can
    proto = make_cnn()
    relu = next(n for n in proto.graph.node if n.op_type == "Relu")
    relu.output[0] = "r0"
    proto.graph.node.insert(list(proto.graph.node).index(relu) + 1,
                            helper.make_node("Shrink", ["r0"], ["r"], name="shrink", lambd=0.1))
    m = ov.load(proto, preprocess="unit")
    flags = {lay.name: lay.grad_reachable for lay in m.layers(grad=True)}
    assert flags == {"conv": False, "relu": False, "shrink": True, "pool": True}
