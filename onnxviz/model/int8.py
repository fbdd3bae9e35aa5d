"""int8 graphs rewritten in float, for their gradients (:func:`.precision.gradient_source`):
the dynamic form's integer convolutions computed in float (``dynamic_in_float``), every
QOperator op as its float op on dequantized weights (``surrogate``), then the dead nodes and
initializers dropped (``prune``). The same tensor names throughout, so layers are found as in
the file."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import PrecisionError

#: QOperator op -> (float op, [(input, scale, zero-point slots) of its data inputs], slot of an
#: int32 bias or None, slot of the output scale (the zero point follows it)).
QOPERATOR = {
    "QLinearConv": ("Conv", [(0, 1, 2), (3, 4, 5)], 8, 6),
    "QLinearMatMul": ("MatMul", [(0, 1, 2), (3, 4, 5)], None, 6),
    "QGemm": ("Gemm", [(0, 1, 2), (3, 4, 5)], 6, 7),
    "QLinearAdd": ("Add", [(0, 1, 2), (3, 4, 5)], None, 6),
    "QLinearMul": ("Mul", [(0, 1, 2), (3, 4, 5)], None, 6),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", [(0, 1, 2)], None, 3),
    "QLinearAveragePool": ("AveragePool", [(0, 1, 2)], None, 3),
    "QLinearLeakyRelu": ("LeakyRelu", [(0, 1, 2)], None, 3),
    "QLinearSigmoid": ("Sigmoid", [(0, 1, 2)], None, 3),
    "QLinearSoftmax": ("Softmax", [(0, 1, 2)], None, 3),
}


class _Consts:
    """Numpy values of a graph's initializers, and new float initializers added to it."""

    def __init__(self, g: onnx.GraphProto):
        self.g = g
        self.values = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    def get(self, name: str):
        return self.values.get(name) if name else None

    def add(self, value: np.ndarray, name: str) -> str:
        taken = set(self.values) | {o for n in self.g.node for o in n.output}
        new, k = name, 1
        while new in taken:
            k += 1
            new = f"{name}_{k}"
        self.g.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), new))
        self.values[new] = value
        return new


def _dequantize(q: np.ndarray, scale, zero, axis: int = 1) -> np.ndarray:
    """``(q - zero) * scale`` in float64, per-axis parameters broadcast along ``axis``."""
    q = q.astype(np.float64)
    scale = np.asarray(scale, np.float64)
    zero = np.zeros(1) if zero is None else np.asarray(zero, np.float64)
    if scale.ndim == 1 and scale.size > 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = -1
        scale = scale.reshape(shape)
        zero = zero.reshape(shape) if zero.size > 1 else zero
    return (q - zero) * scale


def _replace(g: onnx.GraphProto, old: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
    at = list(g.node).index(old)
    g.node.remove(old)
    for k, n in enumerate(new):
        g.node.insert(at + k, n)


def _identity(src: str, out: str, name: str) -> onnx.NodeProto:
    return helper.make_node("Identity", [src], [out], name=name)


def dynamic_in_float(g: onnx.GraphProto, ste: bool) -> None:
    """ConvInteger/MatMulInteger -> the float op on ``float(w - w_zero)``, in place.

    The activation operand is ``DequantizeLinear(q, 1, zero)`` (``q - zero``, the deployed
    rounding, STE through DynamicQuantizeLinear) when ``ste``, else ``x / scale`` (no rounding:
    the surrogate). The output keeps its name and stays the integer accumulator's value (in
    float), so the Cast and scale multiplication after it are unchanged.
    """
    consts = _Consts(g)
    dql = {n.output[0]: n for n in g.node if n.op_type == "DynamicQuantizeLinear"}
    one = None
    for n in list(g.node):
        if n.op_type not in ("ConvInteger", "MatMulInteger"):
            continue
        x, w = n.input[0], n.input[1]
        x_zero = n.input[2] if len(n.input) > 2 else ""
        w_zero = n.input[3] if len(n.input) > 3 else ""
        wq = consts.get(w)
        if wq is None:
            raise PrecisionError(f"{n.op_type} node {n.name!r} has a computed weight input; "
                                 "onnxviz differentiates integer ops with constant weights")
        axis = 0 if n.op_type == "ConvInteger" else -1
        wf = _dequantize(wq, 1.0, consts.get(w_zero), axis)
        w_float = consts.add(wf, f"{w}_float")
        name = n.name or n.output[0]
        if not ste and x in dql:
            src = dql[x]
            a = helper.make_node("Div", [src.input[0], src.output[1]], [f"{name}/x_over_scale"],
                                 name=f"{name}/x_over_scale")
        else:
            one = one or consts.add(np.float32(1.0), "onnxviz_one")
            ins = [x, one] + ([x_zero] if x_zero else [])
            a = helper.make_node("DequantizeLinear", ins, [f"{name}/x_minus_zero"],
                                 name=f"{name}/x_minus_zero")
        op = "Conv" if n.op_type == "ConvInteger" else "MatMul"
        f = helper.make_node(op, [a.output[0], w_float], list(n.output), name=name)
        f.attribute.extend(n.attribute)
        _replace(g, n, [a, f])


def surrogate(g: onnx.GraphProto) -> None:
    """Integer graph -> float graph on dequantized weights, in place (tensor names kept).

    Every quantized tensor is replaced by the real value it stands for, unrounded and unsaturated:
    QuantizeLinear and DequantizeLinear become Identity, constant DequantizeLinear inputs float
    initializers, and each QOperator op its float op. A quantizer whose zero point is its type's
    minimum also stands for the ReLU the quantization tool fused into it (it represents no
    negative value) and becomes a Relu, except on a graph input (nothing was fused there). A Pad
    that QOperator files run on a quantized tensor pads with the real value of its integer
    constant.
    """
    consts = _Consts(g)
    inputs = {i.name for i in g.input}
    qparams = _quant_params(g, consts)
    for n in list(g.node):
        name = n.name or n.output[0]
        if n.op_type == "Pad" and _at(n, 2) and n.input[0] in qparams:
            c = consts.get(n.input[2])
            if c is not None and np.issubdtype(c.dtype, np.integer):
                n.input[2] = consts.add(_dequantize(c, *qparams[n.input[0]]),
                                        f"{n.input[2]}_float")
        if n.op_type == "QuantizeLinear":
            if n.input[0] in inputs:
                _replace(g, n, [_identity(n.input[0], n.output[0], name)])
            else:
                _replace(g, n, [_relu_or_identity(n.input[0], n.output[0], name,
                                                  consts.get(_at(n, 2)))])
        elif n.op_type == "DequantizeLinear":
            q = consts.get(n.input[0])
            if q is None:
                _replace(g, n, [_identity(n.input[0], n.output[0], name)])
                continue
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            value = _dequantize(q, consts.get(n.input[1]), consts.get(_at(n, 2)), axis)
            g.node.remove(n)
            g.initializer.append(numpy_helper.from_array(value.astype(np.float32), n.output[0]))
            consts.values[n.output[0]] = value
        elif n.op_type in QOPERATOR:
            _replace(g, n, _float_op(n, consts))
        elif n.op_type in ("ConvInteger", "MatMulInteger") or n.op_type.startswith("QLinear") or n.op_type in (
                "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"):
            raise PrecisionError(
                f"no float surrogate for {n.op_type!r} at node {name!r} (supported quantized "
                f"ops: QuantizeLinear, DequantizeLinear, {', '.join(sorted(QOPERATOR))}, "
                "DynamicQuantizeLinear with ConvInteger/MatMulInteger)")


def _quant_params(g: onnx.GraphProto, consts: _Consts) -> dict:
    """(scale, zero point) of each quantized tensor: a QuantizeLinear's or QOperator op's output,
    and the output of an op that passes such a tensor on (Pad, MaxPool, Reshape, ...)."""
    found = {}
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            found[n.output[0]] = (consts.get(_at(n, 1)), consts.get(_at(n, 2)))
        elif n.op_type in QOPERATOR and _at(n, QOPERATOR[n.op_type][3]):
            out = QOPERATOR[n.op_type][3]
            found[n.output[0]] = (consts.get(_at(n, out)), consts.get(_at(n, out + 1)))
        elif n.op_type != "DequantizeLinear" and n.input and n.input[0] in found:
            found.update({o: found[n.input[0]] for o in n.output if o})
    return found


def _at(n: onnx.NodeProto, i: int) -> str:
    return n.input[i] if i < len(n.input) else ""


def _float_op(n: onnx.NodeProto, consts: _Consts) -> onnx.NodeProto:
    """A QOperator node as its float op on real-valued (dequantized) inputs."""
    op, slots, bias, out = QOPERATOR[n.op_type]
    name = n.name or n.output[0]
    ins, scales = [], []
    for k, (data, scale, zero) in enumerate(slots):
        q = consts.get(_at(n, data))
        scales.append(consts.get(_at(n, scale)))
        if q is None:
            ins.append(n.input[data])
            continue
        axis = 0 if op == "Conv" else (-1 if op in ("MatMul", "Gemm") else 1)
        if op == "Gemm" and k == 1 and any(a.name == "transB" and a.i for a in n.attribute):
            axis = 0
        ins.append(consts.add(_dequantize(q, scales[-1], consts.get(_at(n, zero)), axis),
                              f"{n.input[data]}_float"))
    if bias is not None and _at(n, bias):
        b = consts.get(n.input[bias])
        if b is None or scales[0] is None or scales[1] is None:
            raise PrecisionError(f"{n.op_type} node {name!r}: its bias or scales are computed, "
                                 "not constants; no float surrogate")
        ins.append(consts.add(b.astype(np.float64) * np.asarray(scales[0], np.float64)
                              * np.asarray(scales[1], np.float64), f"{n.input[bias]}_float"))
    attrs = [a for a in n.attribute if a.name != "channels_last"]
    if any(a.name == "channels_last" and a.i for a in n.attribute):
        raise PrecisionError(f"{n.op_type} node {name!r} is channels-last; no float surrogate")
    if op == "Softmax":
        attrs = [a for a in attrs if a.name == "axis"]
    out_scale, out_zero = _at(n, out), _at(n, out + 1)
    if not out_scale:  # float output (QGemm without y_scale)
        f = helper.make_node(op, ins, [n.output[0]], name=name)
        f.attribute.extend(attrs)
        return [f]
    f = helper.make_node(op, ins, [f"{name}/float"], name=f"{name}/float")
    f.attribute.extend(attrs)
    return [f, _relu_or_identity(f.output[0], n.output[0], name, consts.get(out_zero))]


def _relu_or_identity(x: str, out: str, name: str, zero) -> onnx.NodeProto:
    """Relu when the quantized type represents no negative value (zero point at its minimum,
    or no zero point: uint8 0), else Identity."""
    kind = np.dtype(zero.dtype if zero is not None else np.uint8)
    at_min = zero is None or bool(np.all(zero == np.iinfo(kind).min))
    return helper.make_node("Relu" if at_min else "Identity", [x], [out], name=name)


def prune(g: onnx.GraphProto) -> None:
    """Drop nodes and initializers nothing uses any more."""
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
