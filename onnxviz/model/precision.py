"""int8-quantized and float16 models: what form a file is in, and which graph its gradients use.

Perturbation methods and predictions always run the deployed file itself. Gradients need a graph
that has them, built here from the file (same tensor names, so layers are found as in the file):

* **float16 / mixed precision**: an upcast copy, every float16 weight, Cast and I/O in float32
  (mode ``"upcast"``). The gradient is that of the float16 model's function evaluated in float32
  at the deployed (float16-rounded) input: measured against the float32 model's gradient, it is as
  close as the float16 weights allow (``benchmarks/precision.py``, README "Quantized and float16
  models"), whereas a gradient run in float16 itself loses accuracy in the backward sums.
* **QDQ** (QuantizeLinear/DequantizeLinear around float ops): the file as it is, with the
  straight-through estimator (Bengio et al. 2013, https://arxiv.org/abs/1308.3432) through each
  QuantizeLinear, masked where the value saturates, as quantization-aware training and
  ``torch.fake_quantize_per_tensor_affine`` define it (mode ``"ste"``, rules in
  ``onnxviz/autodiff/rules/quant.py``). The default, ``"ste-logit"``, differentiates the logit
  before its output quantizer (:func:`.saturation.before_output_quantizers`): the one that
  rounds and clips the logits the file returns is read as the identity, every other one as in
  ``"ste"``.
  The top class's logit is the value most likely to pass the range calibrated on a few images;
  there ``"ste"`` defines its whole gradient as zero.
* **dynamic** (DynamicQuantizeLinear + ConvInteger/MatMulInteger): ``"ste"`` keeps the
  deployed rounding and computes the integer convolutions in float (exact up to float32 sums).
* **surrogate** (any int8 form, the default for QOperator files whose QLinearConv/QGemm/...
  compute in integers): the same graph in float with the dequantized weights and no activation
  quantization, ``W = (w - zero_point) * scale``; its gradient is the float model's gradient on
  dequantized weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import PrecisionError

#: The gradient modes a user can ask for (``ov.load(..., gradients=...)``).
GRADIENT_MODES = ("ste", "ste-logit", "surrogate")
#: The modes that keep the file's quantizers (straight-through estimator).
STE_MODES = ("ste", "ste-logit")
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
_DYNAMIC = frozenset({"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"})
#: QOperator op -> (float op, [(input, scale, zero-point slots) of its data inputs], slot of an
#: int32 bias or None, slot of the output scale (the zero point follows it)).
_QOPERATOR = {
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
_FLOAT16 = (TensorProto.FLOAT16, TensorProto.BFLOAT16)


@dataclass(frozen=True)
class Precision:
    """The numeric form of a model file.

    Attributes:
        compute: ``"float32"``, ``"float16"``, ``"mixed"`` (float16 and float32 weights) or
            ``"int8"``.
        io: the image input's dtype (``"float32"``, ``"float16"``).
        quantization: ``None``, ``"qdq"``, ``"qoperator"`` or ``"dynamic"``.
        gradients: the gradient mode gradient methods use: ``"exact"`` (float32), ``"upcast"``
            (float16, computed on a float32 copy), ``"ste-logit"``, ``"ste"`` or
            ``"surrogate"`` (int8).
    """

    compute: str
    io: str
    quantization: str | None
    gradients: str

    def describe(self) -> str:
        """One line for ``onnxviz inspect``."""
        form = {"qdq": "int8 QDQ (QuantizeLinear/DequantizeLinear)",
                "qoperator": "int8 QOperator (QLinearConv, QGemm, ...)",
                "dynamic": "int8 dynamic (DynamicQuantizeLinear, ConvInteger/MatMulInteger)",
                }.get(self.quantization, self.compute)
        return f"{form}, {self.io} input"


def quantization_form(proto: onnx.ModelProto) -> str | None:
    """``"qoperator"``, ``"dynamic"``, ``"qdq"`` or None, from the ops of the main graph."""
    ops = {n.op_type for n in proto.graph.node}
    if ops & set(_QOPERATOR) or any(o.startswith("QLinear") for o in ops):
        return "qoperator"
    if ops & _DYNAMIC:
        return "dynamic"
    if ops & _QDQ:
        return "qdq"
    return None


def detect(proto: onnx.ModelProto, input_dtype, gradients: str | None = None) -> Precision:
    """The :class:`Precision` of ``proto`` and the gradient mode for the user's choice.

    Args:
        proto: the model.
        input_dtype: numpy dtype of the image input.
        gradients: None (the form's default: ``"ste-logit"`` for QDQ, ``"ste"`` for dynamic,
            ``"surrogate"`` for QOperator), or one of :data:`GRADIENT_MODES`.

    Raises:
        PrecisionError: an unknown mode, or an STE mode for a QOperator model.
    """
    if gradients is not None and gradients not in GRADIENT_MODES:
        raise PrecisionError(f"gradients must be one of {', '.join(GRADIENT_MODES)} (or None "
                             f"for the model's default), got {gradients!r}")
    quant = quantization_form(proto)
    weights = {t.data_type for t in proto.graph.initializer
               if t.data_type in (TensorProto.FLOAT, *_FLOAT16) and np.prod(t.dims) > 1}
    if quant:
        compute = "int8"
    elif weights & set(_FLOAT16):
        compute = "mixed" if TensorProto.FLOAT in weights else "float16"
    else:
        compute = "float32"
    io = np.dtype(input_dtype).name
    if quant is None:
        mode = "upcast" if compute != "float32" or io != "float32" else "exact"
        if gradients is not None:
            import warnings

            warnings.warn(f"gradients={gradients!r} applies to int8 models; this model is "
                          f"{compute}, so its gradients are {mode} and the option is ignored",
                          stacklevel=3)
    elif gradients in STE_MODES and quant == "qoperator":
        raise PrecisionError(
            f"gradients={gradients!r} needs QuantizeLinear/DequantizeLinear around float ops, but "
            "this QOperator model computes in integers (QLinearConv, QGemm, ...); use "
            "gradients='surrogate' (the same graph with dequantized float weights)")
    else:
        mode = gradients or {"qoperator": "surrogate", "qdq": "ste-logit"}.get(quant, "ste")
    return Precision(compute, io, quant, mode)


def gradient_source(proto: onnx.ModelProto, precision: Precision) -> onnx.ModelProto:
    """The graph whose gradients stand for ``proto``'s, for ``precision.gradients``.

    Returns ``proto`` itself for float32 models and QDQ in an STE mode; otherwise a rewritten
    copy (same tensor names, ``value_info`` dropped since types change).

    Raises:
        PrecisionError: an integer op that no mode covers (names it and the supported ones).
    """
    mode, quant = precision.gradients, precision.quantization
    if mode == "exact" or (mode in STE_MODES and quant == "qdq"):
        src = proto
    else:
        src = copy.deepcopy(proto)
        del src.graph.value_info[:]
        if quant == "dynamic":
            _dynamic(src.graph, ste=mode in STE_MODES)
        if mode == "surrogate":
            _surrogate(src.graph)
        _prune(src.graph)
    if any(t.data_type in _FLOAT16 for t in src.graph.initializer) or precision.io != "float32" \
            or _has_float16(src):
        src = upcast(src if src is not proto else copy.deepcopy(proto))
    return src


# ---- float16 -------------------------------------------------------------------------------
def _has_float16(proto: onnx.ModelProto) -> bool:
    g = proto.graph
    return any(a.name == "to" and a.i in _FLOAT16 for n in g.node for a in n.attribute) or any(
        vi.type.tensor_type.elem_type in _FLOAT16 for vi in (*g.input, *g.output))


def upcast(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with every float16/bfloat16 weight, constant, Cast target and I/O in float32
    (in place; returns it). ``value_info`` is dropped, to be inferred again."""
    g = proto.graph
    for i, t in enumerate(g.initializer):
        if t.data_type in _FLOAT16:
            g.initializer[i].CopyFrom(_as_float32(t))
    for n in g.node:
        for a in n.attribute:
            if a.name in ("to", "dtype") and a.type == onnx.AttributeProto.INT and a.i in _FLOAT16:
                a.i = TensorProto.FLOAT
            elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type in _FLOAT16:
                a.t.CopyFrom(_as_float32(a.t))
    for vi in (*g.input, *g.output):
        if vi.type.tensor_type.elem_type in _FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    del g.value_info[:]
    return proto


def _as_float32(t: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)


# ---- int8 -> float -------------------------------------------------------------------------
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


def _dynamic(g: onnx.GraphProto, ste: bool) -> None:
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


def _surrogate(g: onnx.GraphProto) -> None:
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
        elif n.op_type in _QOPERATOR:
            _replace(g, n, _float_op(n, consts))
        elif n.op_type in ("ConvInteger", "MatMulInteger") or n.op_type.startswith("QLinear") or n.op_type in (
                "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"):
            raise PrecisionError(
                f"no float surrogate for {n.op_type!r} at node {name!r} (supported quantized "
                f"ops: QuantizeLinear, DequantizeLinear, {', '.join(sorted(_QOPERATOR))}, "
                "DynamicQuantizeLinear with ConvInteger/MatMulInteger)")


def _quant_params(g: onnx.GraphProto, consts: _Consts) -> dict:
    """(scale, zero point) of each quantized tensor: a QuantizeLinear's or QOperator op's output,
    and the output of an op that passes such a tensor on (Pad, MaxPool, Reshape, ...)."""
    found = {}
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            found[n.output[0]] = (consts.get(_at(n, 1)), consts.get(_at(n, 2)))
        elif n.op_type in _QOPERATOR and _at(n, _QOPERATOR[n.op_type][3]):
            out = _QOPERATOR[n.op_type][3]
            found[n.output[0]] = (consts.get(_at(n, out)), consts.get(_at(n, out + 1)))
        elif n.op_type != "DequantizeLinear" and n.input and n.input[0] in found:
            found.update({o: found[n.input[0]] for o in n.output if o})
    return found


def _at(n: onnx.NodeProto, i: int) -> str:
    return n.input[i] if i < len(n.input) else ""


def _float_op(n: onnx.NodeProto, consts: _Consts) -> onnx.NodeProto:
    """A QOperator node as its float op on real-valued (dequantized) inputs."""
    op, slots, bias, out = _QOPERATOR[n.op_type]
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


def _prune(g: onnx.GraphProto) -> None:
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
