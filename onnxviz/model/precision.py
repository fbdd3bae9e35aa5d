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
from onnx import TensorProto, numpy_helper

from ..errors import PrecisionError
from .int8 import QOPERATOR, dynamic_in_float, prune, surrogate

#: The gradient modes a user can ask for (``ov.load(..., gradients=...)``).
GRADIENT_MODES = ("ste", "ste-logit", "surrogate")
#: The modes that keep the file's quantizers (straight-through estimator).
STE_MODES = ("ste", "ste-logit")
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
_DYNAMIC = frozenset({"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"})
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
    if ops & set(QOPERATOR) or any(o.startswith("QLinear") for o in ops):
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
            dynamic_in_float(src.graph, ste=mode in STE_MODES)
        if mode == "surrogate":
            surrogate(src.graph)
        prune(src.graph)
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
