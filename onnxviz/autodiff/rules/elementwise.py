"""Gradients of element-wise arithmetic (with broadcasting undone) and pass-through ops."""

from __future__ import annotations

import math

from ..registry import rule


def _ub(ctx, g, i):
    """Gradient ``g`` (shaped like the output) summed back to input ``i``'s shape if needed."""
    return ctx.unbroadcast(g, ctx.input(i)) if ctx.needs(i) else None


def _pass_first(ctx, node):
    return [ctx.gy(0)] + [None] * (len(node.input) - 1)


for _op in ("Identity", "Dropout"):
    rule(_op, nondiff=(1, 2))(_pass_first)


@rule("Cast")
def cast(ctx, node):
    """Cast the gradient back to the input's float type."""
    t = ctx.types.get(node.input[0])
    g = ctx.gy(0)
    if t is not None and t != ctx.dtype:
        g = ctx.emit("Cast", [g], to=t)
    return [g]


@rule("Add")
def add(ctx, node):
    g = ctx.gy(0)
    return [_ub(ctx, g, 0), _ub(ctx, g, 1)]


@rule("Sub")
def sub(ctx, node):
    g = ctx.gy(0)
    return [_ub(ctx, g, 0), _ub(ctx, ctx.emit("Neg", [g]), 1) if ctx.needs(1) else None]


@rule("Mul")
def mul(ctx, node):
    g, a, b = ctx.gy(0), node.input[0], node.input[1]
    da = _ub(ctx, ctx.emit("Mul", [g, b]), 0) if ctx.needs(0) else None
    db = _ub(ctx, ctx.emit("Mul", [g, a]), 1) if ctx.needs(1) else None
    return [da, db]


@rule("Div")
def div(ctx, node):
    """d(a/b) = g/b, -g*y/b."""
    g, b, y = ctx.gy(0), node.input[1], node.output[0]
    da = _ub(ctx, ctx.emit("Div", [g, b]), 0) if ctx.needs(0) else None
    db = None
    if ctx.needs(1):
        db = _ub(ctx, ctx.emit("Neg", [ctx.emit("Div", [ctx.emit("Mul", [g, y]), b])]), 1)
    return [da, db]


@rule("Pow")
def pow_(ctx, node):
    """d(x^p) = g*p*x^(p-1), g*y*log(x)."""
    g, x, p, y = ctx.gy(0), node.input[0], node.input[1], node.output[0]
    dx = dp = None
    if ctx.needs(0):
        pv = ctx.const_value(p)
        if pv is not None and pv.size == 1:
            pv = float(pv.reshape(()))
            d = ctx.fconst(pv) if pv == 1.0 else ctx.emit(
                "Mul", [ctx.fconst(pv), ctx.emit("Pow", [x, ctx.fconst(pv - 1.0)])]
            )
        else:
            pm1 = ctx.emit("Sub", [p, ctx.const(1.0, dtype=ctx.types.get(p, ctx.dtype))])
            d = ctx.emit("Mul", [p, ctx.emit("Pow", [x, pm1])])
        dx = _ub(ctx, ctx.emit("Mul", [g, d]), 0)
    if ctx.needs(1):
        dp = _ub(ctx, ctx.emit("Mul", [ctx.emit("Mul", [g, y]), ctx.emit("Log", [x])]), 1)
    return [dx, dp]


@rule("Neg")
def neg(ctx, node):
    return [ctx.emit("Neg", [ctx.gy(0)])]


@rule("Abs")
def abs_(ctx, node):
    x = node.input[0]
    if ctx.opset >= 9:
        return [ctx.emit("Mul", [ctx.gy(0), ctx.emit("Sign", [x])])]
    return [ctx.emit("Mul", [ctx.gy(0), ctx.emit("Div", [x, node.output[0]])])]


@rule("Sqrt")
def sqrt(ctx, node):
    """d sqrt(x) = g / (2 y)."""
    y = node.output[0]
    return [ctx.emit("Div", [ctx.gy(0), ctx.emit("Add", [y, y])])]


@rule("Exp")
def exp(ctx, node):
    return [ctx.emit("Mul", [ctx.gy(0), node.output[0]])]


@rule("Log")
def log(ctx, node):
    return [ctx.emit("Div", [ctx.gy(0), node.input[0]])]


@rule("Reciprocal")
def reciprocal(ctx, node):
    """d(1/x) = -g * y^2."""
    y = node.output[0]
    return [ctx.emit("Neg", [ctx.emit("Mul", [ctx.gy(0), ctx.emit("Mul", [y, y])])])]


@rule("Erf")
def erf(ctx, node):
    """d erf(x) = g * 2/sqrt(pi) * exp(-x^2)."""
    x = node.input[0]
    e = ctx.emit("Exp", [ctx.emit("Neg", [ctx.emit("Mul", [x, x])])])
    return [ctx.emit("Mul", [ctx.gy(0), ctx.emit("Mul", [e, ctx.fconst(2 / math.sqrt(math.pi))])])]


@rule("Sum")
def sum_(ctx, node):
    g = ctx.gy(0)
    return [_ub(ctx, g, i) for i in range(len(node.input))]


@rule("Mean")
def mean(ctx, node):
    g = ctx.emit("Mul", [ctx.gy(0), ctx.fconst(1.0 / len(node.input))])
    return [_ub(ctx, g, i) for i in range(len(node.input))]


def _minmax(ctx, node, cmp):
    g, y = ctx.gy(0), node.output[0]
    out = []
    for i, x in enumerate(node.input):
        if not ctx.needs(i):
            out.append(None)
            continue
        # x_i == y  <=>  not (x_i < y) for Max, not (x_i > y) for Min (float Equal needs opset 11)
        hit = ctx.emit("Not", [ctx.emit(cmp, [x, y])])
        out.append(_ub(ctx, ctx.mask(hit, g), i))
    return out


@rule("Max")
def max_(ctx, node):
    return _minmax(ctx, node, "Less")


@rule("Min")
def min_(ctx, node):
    return _minmax(ctx, node, "Greater")


@rule("Where", nondiff=(0,))
def where(ctx, node):
    c, g = node.input[0], ctx.gy(0)
    zero = ctx.fconst(0.0)
    da = _ub(ctx, ctx.emit("Where", [c, g, zero]), 1) if ctx.needs(1) else None
    db = _ub(ctx, ctx.emit("Where", [c, zero, g]), 2) if ctx.needs(2) else None
    return [None, da, db]
