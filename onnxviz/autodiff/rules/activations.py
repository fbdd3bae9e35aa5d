"""Gradients of activation functions and Softmax/LogSoftmax.

Where the derivative can be read from the op's output (ReLU, Clip, Sigmoid, Tanh, LeakyReLU …),
the rule uses the output, not the input: the input of an activation is usually a Conv output that
ONNX Runtime fuses with the activation, and consuming it in the backward graph would break that
fusion.
"""

from __future__ import annotations

import math

from ..registry import rule


def _select(ctx, cond, a, b):
    """``a`` where ``cond`` else ``b`` (Where from opset 9, arithmetic blend before)."""
    if ctx.opset >= 9:
        return ctx.emit("Where", [cond, a, b])
    c = ctx.cast_to_model(cond)
    return ctx.emit("Add", [ctx.emit("Mul", [a, c]), ctx.emit("Mul", [b, ctx.emit("Sub", [ctx.fconst(1.0), c])])])


def _positive(ctx, t):
    return ctx.emit("Greater", [t, ctx.fconst(0.0)])


@rule("Relu")
def relu(ctx, node):
    """g * (y > 0)."""
    return [ctx.mask(_positive(ctx, node.output[0]), ctx.gy(0))]


@rule("LeakyRelu")
def leaky_relu(ctx, node):
    alpha = ctx.attr("alpha", 0.01)
    g = ctx.gy(0)
    probe = node.output[0] if alpha > 0 else node.input[0]
    return [_select(ctx, _positive(ctx, probe), g, ctx.emit("Mul", [g, ctx.fconst(alpha)]))]


@rule("PRelu")
def prelu(ctx, node):
    x, slope, g = node.input[0], node.input[1], ctx.gy(0)
    pos = _positive(ctx, x)
    dx = _select(ctx, pos, g, ctx.emit("Mul", [g, slope])) if ctx.needs(0) else None
    ds = None
    if ctx.needs(1):
        ds = ctx.unbroadcast(_select(ctx, pos, ctx.fconst(0.0), ctx.emit("Mul", [g, x])), slope)
    return [dx, ds]


@rule("Elu")
def elu(ctx, node):
    """x > 0: g; else g * (y + alpha)."""
    alpha = ctx.attr("alpha", 1.0)
    y, g = node.output[0], ctx.gy(0)
    neg = ctx.emit("Mul", [g, ctx.emit("Add", [y, ctx.fconst(alpha)])])
    return [_select(ctx, _positive(ctx, y), g, neg)]


@rule("Selu")
def selu(ctx, node):
    """x > 0: g * gamma; else g * (y + alpha * gamma)."""
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    y, g = node.output[0], ctx.gy(0)
    pos = ctx.emit("Mul", [g, ctx.fconst(gamma)])
    neg = ctx.emit("Mul", [g, ctx.emit("Add", [y, ctx.fconst(alpha * gamma)])])
    return [_select(ctx, _positive(ctx, y), pos, neg)]


@rule("Sigmoid")
def sigmoid(ctx, node):
    """g * y * (1 - y)."""
    y = node.output[0]
    d = ctx.emit("Mul", [y, ctx.emit("Sub", [ctx.fconst(1.0), y])])
    return [ctx.emit("Mul", [ctx.gy(0), d])]


@rule("Tanh")
def tanh(ctx, node):
    """g * (1 - y^2)."""
    y = node.output[0]
    d = ctx.emit("Sub", [ctx.fconst(1.0), ctx.emit("Mul", [y, y])])
    return [ctx.emit("Mul", [ctx.gy(0), d])]


@rule("Softplus")
def softplus(ctx, node):
    """g * sigmoid(x)."""
    return [ctx.emit("Mul", [ctx.gy(0), ctx.emit("Sigmoid", [node.input[0]])])]


@rule("Softsign")
def softsign(ctx, node):
    """g / (1 + |x|)^2."""
    d = ctx.emit("Add", [ctx.fconst(1.0), ctx.emit("Abs", [node.input[0]])])
    return [ctx.emit("Div", [ctx.gy(0), ctx.emit("Mul", [d, d])])]


@rule("HardSigmoid")
def hard_sigmoid(ctx, node):
    """g * alpha where 0 < y < 1."""
    alpha = ctx.attr("alpha", 0.2)
    y = node.output[0]
    inside = ctx.emit("And", [_positive(ctx, y), ctx.emit("Less", [y, ctx.fconst(1.0)])])
    return [ctx.mask(inside, ctx.emit("Mul", [ctx.gy(0), ctx.fconst(alpha)]))]


@rule("HardSwish")
def hard_swish(ctx, node):
    """y = x * clip(x/6 + 1/2, 0, 1): dy/dx = 0 (x < -3), x/3 + 1/2 (|x| < 3), 1 (x > 3)."""
    x, g = node.input[0], ctx.gy(0)
    mid = ctx.emit("Add", [ctx.emit("Mul", [x, ctx.fconst(1 / 3)]), ctx.fconst(0.5)])
    # min(mid, 1) for x > 3, else mid (< 2): no Where, which ONNX Runtime's CPU provider runs
    # 1.7x slower than the ten vectorised kernels here (MobileNetV3's 21 HardSwishes)
    below = ctx.emit("LessOrEqual" if ctx.opset >= 12 else "Less", [x, ctx.fconst(3.0)])
    d = ctx.emit("Min", [mid, ctx.emit("Add", [ctx.cast_to_model(below), ctx.fconst(1.0)])])
    d = ctx.mask(ctx.emit("Greater", [x, ctx.fconst(-3.0)]), d)
    return [ctx.emit("Mul", [g, d])]


@rule("Gelu", since=20)
def gelu(ctx, node):
    """Exact: Phi(x) + x phi(x); tanh approximation differentiated as written."""
    x, g = node.input[0], ctx.gy(0)
    if ctx.attr("approximate", "none") == "tanh":
        c = math.sqrt(2 / math.pi)
        x2 = ctx.emit("Mul", [x, x])
        inner = ctx.emit("Mul", [ctx.emit("Mul", [x, ctx.fconst(c)]),
                                 ctx.emit("Add", [ctx.fconst(1.0), ctx.emit("Mul", [x2, ctx.fconst(0.044715)])])])
        t = ctx.emit("Tanh", [inner])
        dinner = ctx.emit("Mul", [ctx.fconst(c), ctx.emit("Add", [ctx.fconst(1.0), ctx.emit("Mul", [x2, ctx.fconst(3 * 0.044715)])])])
        sech2 = ctx.emit("Sub", [ctx.fconst(1.0), ctx.emit("Mul", [t, t])])
        d = ctx.emit("Add", [
            ctx.emit("Mul", [ctx.fconst(0.5), ctx.emit("Add", [ctx.fconst(1.0), t])]),
            ctx.emit("Mul", [ctx.emit("Mul", [ctx.fconst(0.5), x]), ctx.emit("Mul", [sech2, dinner])]),
        ])
    else:
        return [_gelu_exact(ctx, x, g)]
    return [ctx.emit("Mul", [g, d])]


def _gelu_exact(ctx, x, g):
    """g * (Phi(x) + x phi(x)) = g/2 * (1 + erf(u) + sqrt(2/pi) x / exp(u^2)), u = x / sqrt(2):
    ten element-wise kernels (``x / exp(u^2)`` is 0, its limit, where ``exp`` overflows)."""
    u = ctx.emit("Mul", [x, ctx.fconst(1 / math.sqrt(2))])
    p = ctx.emit("Div", [x, ctx.emit("Exp", [ctx.emit("Mul", [u, u])])])
    twice = ctx.emit("Add", [ctx.emit("Erf", [u]), ctx.emit("Mul", [p, ctx.fconst(math.sqrt(2 / math.pi))])])
    twice = ctx.emit("Add", [twice, ctx.fconst(1.0)])  # two Adds: 2.2x faster than a broadcast Sum
    return ctx.emit("Mul", [ctx.emit("Mul", [g, ctx.fconst(0.5)]), twice])


@rule("Gelu", domain="com.microsoft")
def gelu_contrib(ctx, node):
    """ONNX Runtime's fused exact GELU (what :func:`..graph.fuse_gelu` writes before opset 20)."""
    return [_gelu_exact(ctx, node.input[0], ctx.gy(0))]


def _clip_mask(ctx, y, lo, hi):
    conds = []
    if lo is not None:
        conds.append(ctx.emit("Greater", [y, lo]))
    if hi is not None:
        conds.append(ctx.emit("Less", [y, hi]))
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else ctx.emit("And", conds)


@rule("Clip")
def clip_attr(ctx, node):
    """Bounds as attributes (opset < 11): g where min < y < max."""
    lo, hi = ctx.attr("min"), ctx.attr("max")
    cond = _clip_mask(ctx, node.output[0], None if lo is None else ctx.fconst(lo),
                      None if hi is None else ctx.fconst(hi))
    return [ctx.gy(0) if cond is None else ctx.mask(cond, ctx.gy(0))]


@rule("Clip", since=11, nondiff=(1, 2))
def clip(ctx, node):
    """Bounds as optional inputs (opset 11+): g where min < y < max."""
    lo = ctx.input(1) or None
    hi = ctx.input(2) or None
    cond = _clip_mask(ctx, node.output[0], lo, hi)
    return [ctx.gy(0) if cond is None else ctx.mask(cond, ctx.gy(0))] + [None] * (len(node.input) - 1)


def _softmax_axes(ctx, node, since13: bool) -> list[int]:
    r = ctx.rank(node.input[0])
    if since13:
        return [ctx.attr("axis", -1) % r]
    axis = ctx.attr("axis", 1) % r
    return list(range(axis, r))  # before opset 13 the input is coerced to 2-D at `axis`


def _softmax(ctx, node, since13):
    """dx = y * (g - sum(g * y))."""
    y, g = node.output[0], ctx.gy(0)
    s = ctx.reduce_sum(ctx.emit("Mul", [g, y]), _softmax_axes(ctx, node, since13), keepdims=1)
    return [ctx.emit("Mul", [y, ctx.emit("Sub", [g, s])])]


def _log_softmax(ctx, node, since13):
    """dx = g - exp(y) * sum(g)."""
    y, g = node.output[0], ctx.gy(0)
    s = ctx.reduce_sum(g, _softmax_axes(ctx, node, since13), keepdims=1)
    return [ctx.emit("Sub", [g, ctx.emit("Mul", [ctx.emit("Exp", [y]), s])])]


rule("Softmax")(lambda ctx, node: _softmax(ctx, node, False))
rule("Softmax", since=13)(lambda ctx, node: _softmax(ctx, node, True))
rule("LogSoftmax")(lambda ctx, node: _log_softmax(ctx, node, False))
rule("LogSoftmax", since=13)(lambda ctx, node: _log_softmax(ctx, node, True))
