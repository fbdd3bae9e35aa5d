"""Shapes only a run reveals: the probe of onnxviz.model.shapes and the rules that rely on it."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxviz as ov
from onnxviz.autodiff import gradient_model
from onnxviz.errors import UnsupportedOpError
from onnxviz.model.shapes import shape_facts

torch = pytest.importorskip("torch")
nn = torch.nn


class TinyViT(nn.Module):
    """A class token concatenated after a patch embedding: the TorchScript exporter computes the
    class token's expand size from Shape, so static inference loses the token count."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1)
        t = self.norm(t)
        return self.head(t.mean(1) + t[:, 0])


class CeilPoolMean(nn.Module):
    """AvgPool2d(ceil_mode=True, count_include_pad=False) then mean: at 15 px ONNX's static shape
    inference says the pool gives 9x9 where ONNX Runtime (like torch) gives 8x8, and ReduceMean's
    and AveragePool's gradients need the true size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).mean((2, 3)))


def _export(net, size, path):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (x,), path, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return path


def _torch64_grad(net, x, target):
    net = net.double()
    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = net(x)
    y[np.arange(len(x)), target].sum().backward()
    net.float()
    return x.grad.numpy()


@pytest.mark.parametrize("net_cls,size", [(TinyViT, 16), (CeilPoolMean, 15)])
def test_gradients_where_static_inference_stops(net_cls, size, tmp_path):
    torch.manual_seed(0)
    net = net_cls()
    path = _export(net, size, tmp_path / "m.onnx")
    m = ov.load(path, preprocess="raw")
    facts = m.shape_facts()
    assert facts.probed > 0
    if net_cls is TinyViT:  # without the probe's facts the rules refuse: sizes are unknown
        with pytest.raises(UnsupportedOpError, match="static"):
            gradient_model(m.proto, of="logits", wrt=["x"])
    else:  # static inference is wrong about the pool's size; the probe reads the true one
        pool = next(n.output[0] for n in m.proto.graph.node if n.op_type == "AveragePool")
        assert m.shape_of(pool)[2:] == (9, 9)
        assert facts.shapes[pool] == [None, 6, 8, 8]
    # with them the gradient equals torch's float64 autograd at batch 3
    x = np.random.default_rng(1).standard_normal((3, 3, size, size)).astype(np.float32)
    target = [0, 2, 3]
    g = m.grad(x, target)
    ref = _torch64_grad(net, x, target)
    assert np.abs(g - ref).max() <= 1e-4 * np.abs(ref).max()


def test_probe_sizes_follow_the_batch_only_where_they_must(tmp_path):
    torch.manual_seed(0)
    m = ov.load(_export(TinyViT(), 16, tmp_path / "vit.onnx"), preprocess="raw")
    facts = m.shape_facts()
    concat = next(n for n in m.proto.graph.node if n.op_type == "Concat"
                  and facts.shapes.get(n.output[0], [None, None, None])[1:] == [17, 8])
    assert facts.shapes[concat.output[0]] == [None, 17, 8]  # batch symbolic, tokens static
    assert sorted(facts.shapes[i][1:] for i in concat.input) == [[1, 8], [16, 8]]
    # shape arithmetic that depends on the batch is not folded into a constant
    batch_dependent = [k for k, v in facts.shapes.items() if v and v[0] is None]
    assert batch_dependent
    for name, value in facts.consts.items():
        assert value.dtype.kind in "iub"


def test_probe_reads_only_what_static_inference_left_open(shapes_path):
    """On a CNN whose float sizes inference knows, only integer shape arithmetic is probed."""
    m = ov.load(shapes_path)
    facts = shape_facts(m.proto, m.input.name, m.input.shape)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [
        *onnx.shape_inference.infer_shapes(m.proto).graph.value_info, *m.proto.graph.output]}
    assert all(types.get(name) != TensorProto.FLOAT for name in facts.shapes)


def _gather_model(axis: int):
    """y = sum(w * Gather(x, idx)) where idx = Range(0, dim) computed from Shape at run time,
    reversed (so the gather is a permutation that follows the batch on axis 0)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "ax"], ["n"], axis=0),
        helper.make_node("Sub", ["n", "one"], ["last"]),
        helper.make_node("Range", ["last", "minus1", "minus1"], ["idx"]),
        helper.make_node("Gather", ["x", "idx"], ["gx"], axis=axis),
        helper.make_node("Mul", ["gx", "w"], ["wy"]),
        helper.make_node("ReduceSum", ["wy", "axes"], ["y"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(np.array(axis, np.int64), "ax"),
             numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array(-1, np.int64), "minus1"),
             numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
             numpy_helper.from_array(
                 np.random.default_rng(0).standard_normal((1, 3, 4)).astype(np.float32), "w")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["n", 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("axis", [0, 1])
def test_gather_with_indices_computed_at_run_time(axis):
    model = _gather_model(axis)
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    gm = gradient_model(model, of="y", wrt=["x"])
    sess = ort.InferenceSession(gm.model.SerializeToString(), providers=["CPUExecutionProvider"])
    seed = np.array([1.0, -2.0], np.float32)
    got = sess.run([gm.grads["x"]], {"x": x, gm.seed: seed})[0]
    # d/dx sum_b seed_b * sum(w * gather(x)): the weights land on the gathered positions
    w = numpy_helper.to_array(model.graph.initializer[-1])
    if axis == 0:
        ref = np.broadcast_to(w, x.shape) * seed[::-1, None, None]
    else:
        ref = np.broadcast_to(w, x.shape)[:, ::-1] * seed[:, None, None]
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
