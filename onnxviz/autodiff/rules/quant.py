"""Quantization ops: the straight-through estimator (STE) of quantization-aware training.

Rounding has a zero gradient almost everywhere, so QAT treats ``round`` as the identity on the
backward pass (Bengio, Léonard, Courville 2013, https://arxiv.org/abs/1308.3432; Jacob et al. 2018,
https://arxiv.org/abs/1712.05877, sec. 3) and zeroes the gradient where the value saturates, as
``torch.fake_quantize_per_tensor_affine`` does. The integer tensor between QuantizeLinear and
DequantizeLinear carries the gradient in its own units (``graph.GraphInfo.is_float`` lets it):

* QuantizeLinear ``q = saturate(round(x / s) + z)``: ``dx = dq / s`` where ``round(x / s) + z``
  lies in the integer type's range, 0 elsewhere;
* DequantizeLinear ``y = (q - z) * s``: ``dq = dy * s``;
* DynamicQuantizeLinear ``(q, s, z)`` with ``s, z`` from the range of ``x`` (which always covers
  ``x``): ``dx = dq / s``; the scale is held constant, as an observer's range is in QAT.
"""

from __future__ import annotations

from onnx import TensorProto

from ..registry import rule

_RANGES = {
    TensorProto.UINT8: (0, 255), TensorProto.INT8: (-128, 127),
    TensorProto.UINT16: (0, 65535), TensorProto.INT16: (-32768, 32767),
    TensorProto.UINT4: (0, 15), TensorProto.INT4: (-8, 7),
}


def _per_axis(ctx, param: str, like: str) -> str:
    """A scale or zero point broadcastable against ``like`` (1-D per-axis ones along ``axis``)."""
    shape = ctx.shape(param)
    if ctx.attr("block_size", 0):
        ctx.fail("blocked quantization (block_size) has no gradient rule")
    if shape is None or len(shape) != 1:
        return param
    rank = ctx.rank(like)
    target = [1] * rank
    target[ctx.attr("axis", 1) % rank] = -1
    return ctx.emit("Reshape", [param, ctx.iconst(target)])


@rule("QuantizeLinear", nondiff=(1, 2))
def quantize_linear(ctx, node):
    """STE: the gradient divided by the scale, zero where ``round(x / s) + z`` saturates."""
    x = node.input[0]
    elem = ctx.types.get(node.output[0], TensorProto.UINT8)
    if elem not in _RANGES:
        ctx.fail(f"no gradient rule for quantizing to type {TensorProto.DataType.Name(elem)}")
    lo, hi = _RANGES[elem]
    s = _per_axis(ctx, node.input[1], x)
    r = ctx.emit("Round", [ctx.emit("Div", [x, s])])
    if ctx.input(2):
        z = ctx.emit("Cast", [_per_axis(ctx, node.input[2], x)], to=ctx.dtype)
        r = ctx.emit("Add", [r, z])
    inside = ctx.emit("And", [ctx.emit("Not", [ctx.emit("Less", [r, ctx.fconst(lo)])]),
                              ctx.emit("Not", [ctx.emit("Greater", [r, ctx.fconst(hi)])])])
    g = ctx.emit("Div", [ctx.mask(inside, ctx.gy(0)), s])
    return [g] + [None] * (len(node.input) - 1)


@rule("DequantizeLinear", nondiff=(1, 2))
def dequantize_linear(ctx, node):
    """``dq = dy * s`` (the integer input's gradient, in its own units)."""
    g = ctx.emit("Mul", [ctx.gy(0), _per_axis(ctx, node.input[1], node.input[0])])
    return [g] + [None] * (len(node.input) - 1)


@rule("DynamicQuantizeLinear")
def dynamic_quantize_linear(ctx, node):
    """STE: ``dx = dq / s`` with the computed scale held constant (its own gradient dropped)."""
    gq = ctx.gy(0)
    if gq is None:
        return [None]
    return [ctx.emit("Div", [gq, node.output[1]])]
