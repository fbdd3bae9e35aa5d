"""Gradients of ReduceSum, ReduceMean, ReduceMax and ReduceMin (axes as attribute or input)."""

from __future__ import annotations

import numpy as np

from ..registry import rule

# opset from which each reduction takes its axes as the second input instead of an attribute
_AXES_INPUT_SINCE = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18}


def _axes(ctx, node) -> list[int] | None:
    """Normalized reduced axes, or None when the op is a no-op (noop_with_empty_axes)."""
    rank = ctx.rank(node.input[0])
    if ctx.opset >= _AXES_INPUT_SINCE[node.op_type]:
        axes = ctx.const_value(ctx.input(1)) if ctx.input(1) else np.array([], np.int64)
        if axes is None:
            ctx.fail("the reduced axes must be constant")
        axes = [int(a) for a in np.ravel(axes)]
    else:
        axes = list(ctx.attr("axes", []))
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return None
        axes = list(range(rank))
    return sorted(a % rank for a in axes)


def _spread(ctx, node, g):
    """(g expanded back over the reduced axes, axes, y with keepdims) or None for a no-op."""
    x, y = node.input[0], node.output[0]
    axes = _axes(ctx, node)
    if axes is None:
        return None, None, y
    if not ctx.attr("keepdims", 1):
        g = ctx.unsqueeze(g, axes)
        y = ctx.unsqueeze(y, axes)
    return ctx.emit("Expand", [g, ctx.shape_of(x)]), axes, y


def _rest(node):
    return [None] * (len(node.input) - 1)


@rule("ReduceSum", nondiff=(1,))
def reduce_sum(ctx, node):
    g, _, _ = _spread(ctx, node, ctx.gy(0))
    return [g or ctx.gy(0)] + _rest(node)


@rule("ReduceMean", nondiff=(1,))
def reduce_mean(ctx, node):
    axes = _axes(ctx, node)
    if axes is None:
        return [ctx.gy(0)] + _rest(node)
    count = float(np.prod(ctx.static_dims(node.input[0], axes)))
    # scale the reduced gradient, then spread it: one pass over the input's size, not two
    g, _, _ = _spread(ctx, node, ctx.emit("Mul", [ctx.gy(0), ctx.fconst(1.0 / count)]))
    return [g] + _rest(node)


def _reduce_extreme(ctx, node, cmp):
    g, _, y = _spread(ctx, node, ctx.gy(0))
    if g is None:
        return [ctx.gy(0)] + _rest(node)
    hit = ctx.emit("Not", [ctx.emit(cmp, [node.input[0], y])])
    return [ctx.mask(hit, g)] + _rest(node)


@rule("ReduceMax", nondiff=(1,))
def reduce_max(ctx, node):
    return _reduce_extreme(ctx, node, "Less")


@rule("ReduceMin", nondiff=(1,))
def reduce_min(ctx, node):
    return _reduce_extreme(ctx, node, "Greater")
