"""Small CNNs written inline with onnx.helper, one per kind of op the incremental plan knows."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Net:
    """Builds a graph from ``x`` (N, 3, H, W) or (N, H, W, 3) with random weights."""

    def __init__(self, size=(20, 18), layout="NCHW", seed=0):
        self.rng = np.random.default_rng(seed)
        self.size, self.layout = size, layout
        self.nodes, self.inits, self.k = [], [], 0
        self.channels = {}

    def _name(self, op):
        self.k += 1
        return f"{op.lower()}{self.k}"

    def _const(self, value, stem):
        name = self._name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op, inputs, channels, **attrs):
        out = self._name(op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        self.channels[out] = channels
        return out

    def input(self):
        self.channels["x"] = 3
        if self.layout == "NHWC":
            return self.node("Transpose", ["x"], 3, perm=[0, 3, 1, 2])
        return "x"

    def conv(self, x, cout, k=3, s=1, d=1, pads=None, group=1, auto_pad=None):
        cin = self.channels[x]
        w = self._const(self.rng.normal(0, (cin // group * k * k) ** -0.5,
                                        (cout, cin // group, k, k)), "w")
        b = self._const(self.rng.normal(0, 0.1, cout), "b")
        attrs = dict(kernel_shape=[k, k], strides=[s, s], dilations=[d, d], group=group)
        if auto_pad:
            attrs["auto_pad"] = auto_pad
        else:
            p = (k - 1) * d // 2 if pads is None else pads
            attrs["pads"] = [p] * 4 if isinstance(p, int) else list(p)
        return self.node("Conv", [x, w, b], cout, **attrs)

    def act(self, x, op="Tanh"):
        return self.node(op, [x], self.channels[x])

    def bn(self, x):
        c = self.channels[x]
        params = [self._const(v, "bn") for v in (self.rng.uniform(0.5, 1.5, c),
                                                  self.rng.normal(0, 0.1, c),
                                                  self.rng.normal(0, 0.1, c),
                                                  self.rng.uniform(0.5, 1.5, c))]
        return self.node("BatchNormalization", [x, *params], c)

    def pool(self, x, op="MaxPool", k=3, s=2, pads=(0, 0, 0, 0), ceil=0, **attrs):
        return self.node(op, [x], self.channels[x], kernel_shape=[k, k], strides=[s, s],
                         pads=list(pads), ceil_mode=ceil, **attrs)

    def add(self, a, b):
        return self.node("Add", [a, b], self.channels[a])

    def scale(self, x):
        """Mul by a per-channel constant."""
        c = self._const(self.rng.uniform(0.5, 2, (1, self.channels[x], 1, 1)), "s")
        return self.node("Mul", [x, c], self.channels[x])

    def concat(self, *xs):
        return self.node("Concat", list(xs), sum(self.channels[x] for x in xs), axis=1)

    def pad(self, x, pads, value=0.0):
        p = self._name("pads")
        self.inits.append(numpy_helper.from_array(np.asarray(pads, np.int64), p))
        v = self._const(value, "v")
        return self.node("Pad", [x, p, v], self.channels[x], mode="constant")

    def head(self, x, classes=5):
        g = self.node("GlobalAveragePool", [x], self.channels[x])
        f = self.node("Flatten", [g], self.channels[x], axis=1)
        w = self._const(self.rng.normal(0, 1, (classes, self.channels[x])), "fc")
        b = self._const(self.rng.normal(0, 0.1, classes), "fcb")
        out = self.node("Gemm", [f, w, b], classes, transB=1)
        self.logits = out
        return out

    def model(self) -> onnx.ModelProto:
        h, w = self.size
        shape = ["N", 3, h, w] if self.layout == "NCHW" else ["N", h, w, 3]
        graph = helper.make_graph(
            self.nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(self.logits, TensorProto.FLOAT, ["N", 5])],
            self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        m.metadata_props.add(key="onnxviz.preprocess", value=json.dumps({"preset": "raw"}))
        onnx.checker.check_model(m)
        return m


def strided_dilated(act="Tanh"):
    n = Net()
    x = n.conv(n.input(), 8, k=3, s=2)
    x = n.act(x, act)
    x = n.conv(x, 8, k=3, d=2)
    x = n.conv(x, 8, k=5, s=2, pads=(1, 2, 2, 0))  # asymmetric pads
    n.head(n.act(x, act))
    return n.model()


def grouped(act="Tanh"):
    n = Net()
    x = n.conv(n.input(), 6, k=3)
    x = n.conv(x, 6, k=3, group=3)
    x = n.conv(x, 6, k=3, s=2, group=6)  # depthwise
    x = n.bn(x)
    n.head(n.act(x, act))
    return n.model()


def pooling(act="Relu"):
    n = Net(size=(21, 19))
    x = n.act(n.conv(n.input(), 6, k=3), act)
    x = n.pool(x, "MaxPool", k=3, s=2, ceil=1)
    x = n.conv(x, 6, k=3)
    x = n.pool(x, "AveragePool", k=3, s=2, pads=(1, 1, 1, 1), count_include_pad=1)
    x = n.pool(x, "MaxPool", k=2, s=1, pads=(0, 0, 1, 1))
    n.head(x)
    return n.model()


def residual(act="Tanh"):
    n = Net()
    stem = n.act(n.conv(n.input(), 8, k=3, s=2), act)
    y = n.act(n.bn(n.conv(stem, 8, k=3)), act)
    y = n.conv(y, 8, k=3)
    x = n.act(n.add(y, stem), act)
    down = n.conv(x, 8, k=1, s=2, pads=0)
    y = n.conv(n.act(n.conv(x, 8, k=3, s=2), act), 8, k=3)
    x = n.act(n.add(y, down), act)
    n.head(n.scale(x))
    return n.model()


def concat(act="Tanh"):
    n = Net()
    x = n.act(n.conv(n.input(), 4, k=3), act)
    a = n.conv(x, 4, k=1, pads=0)
    b = n.conv(x, 4, k=5, s=1)
    c = n.conv(n.pad(x, [0, 0, 2, 1, 0, 0, 0, 1], 0.5), 4, k=3, pads=0)  # Pad, valid conv
    x = n.concat(a, b, c)
    n.head(n.act(n.conv(x, 6, k=3, s=2), act))
    return n.model()


def zero_pads(act="Tanh"):
    """TensorFlow-style "same" padding: zero Pads that only a Conv reads (folded into it, one of
    them into a Conv with padding of its own), and one that a Conv and an Add both read (kept)."""
    n = Net()
    x = n.act(n.conv(n.pad(n.input(), [0, 0, 0, 0, 0, 0, 1, 1]), 4, k=3, s=2, pads=0), act)
    x = n.act(n.conv(n.pad(x, [0, 0, 2, 0, 0, 0, 1, 3]), 4, k=3, s=1, pads=1), act)
    p = n.pad(x, [0, 0, 1, 1, 0, 0, 1, 1])
    y = n.node("Add", [n.conv(p, 4, k=3, pads=1), p], 4)
    n.head(n.act(n.conv(y, 6, k=3, s=2), act))
    return n.model()


def shape_head(act="Tanh"):
    """EfficientNet-PyTorch's flatten: Reshape to (Shape(input)[:1], -1) (opset 15's Shape with
    ``end``), so the suffix reads the input's shape only, and the mid-level tensor's whole
    shape as well."""
    n = Net()
    x = n.act(n.conv(n.input(), 4, k=3, s=2), act)
    y = n.act(n.conv(x, 6, k=3, s=2), act)
    g = n.node("GlobalAveragePool", [y], 6)
    batch = n.node("Shape", ["x"], 1, end=1)
    rest = n.node("Shape", [x], 1, start=1, end=2)  # 4: unused channels, read as a shape
    minus = n.node("Constant", [], 1, value=numpy_helper.from_array(np.array([-1], np.int64)))
    target = n.node("Concat", [batch, minus], 1, axis=0)
    f = n.node("Reshape", [g, target], 6)
    f = n.node("Mul", [f, n.node("Cast", [n.node("ReduceSum", [rest], 1, keepdims=0)], 1,
                                 to=TensorProto.FLOAT)], 6)
    w = n._const(n.rng.normal(0, 1, (6, 5)), "fc")
    n.logits = n.node("MatMul", [f, w], 5)
    return n.model()


def same_upper_nhwc(act="Tanh"):
    n = Net(size=(17, 20), layout="NHWC")
    x = n.conv(n.input(), 6, k=3, s=2, auto_pad="SAME_UPPER")
    x = n.act(x, act)
    x = n.conv(x, 6, k=4, s=2, auto_pad="SAME_LOWER")
    n.head(n.act(x, act))
    return n.model()


#: name -> builder(act) of every inline net.
NETS = {f.__name__: f for f in (strided_dilated, grouped, pooling, residual, concat,
                                 zero_pads, shape_head, same_upper_nhwc)}
