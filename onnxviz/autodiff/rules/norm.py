"""Gradients of normalization layers: BatchNormalization (inference), InstanceNormalization,
LayerNormalization and LRN."""

from __future__ import annotations

import numpy as np

from ..registry import rule


def _channel_shape(rank: int, c: int = -1) -> list[int]:
    return [c] + [1] * (rank - 2)


@rule("BatchNormalization", nondiff=(1, 2, 3, 4))
def batch_norm(ctx, node):
    """Inference mode: y = (x - mean) * scale / sqrt(var + eps) + B, so dx = g * scale / sqrt(var + eps).

    (Ioffe & Szegedy, arXiv:1502.03167, Algorithm 2.)"""
    if ctx.attr("training_mode", 0):
        ctx.fail("BatchNormalization in training mode has batch-dependent gradients")
    x, scale, var = node.input[0], node.input[1], node.input[4]
    eps = ctx.attr("epsilon", 1e-5)
    rank = ctx.rank(x)
    sv, vv = ctx.const_value(scale), ctx.const_value(var)
    if sv is not None and vv is not None:
        f = sv.astype(np.float64) / np.sqrt(vv.astype(np.float64) + eps)
        factor = ctx.fconst(f.reshape(_channel_shape(rank, f.size)) if rank > 1 else f)
    else:
        f = ctx.emit("Div", [scale, ctx.emit("Sqrt", [ctx.emit("Add", [var, ctx.fconst(eps)])])])
        factor = ctx.unsqueeze(f, list(range(1, rank - 1)))
    return [ctx.emit("Mul", [ctx.gy(0), factor]), None, None, None, None]


def reduce_mean(ctx, x, axes):
    """ReduceMean with keepdims over ``axes`` (axes as input from opset 18)."""
    if ctx.opset >= 18:
        return ctx.emit("ReduceMean", [x, ctx.iconst(axes)], keepdims=1)
    return ctx.emit("ReduceMean", [x], axes=list(axes), keepdims=1)


def _normalize_grad(ctx, x, h, axes, eps):
    """dx for xhat = (x - mean) / sqrt(var + eps) over ``axes`` given h = dL/dxhat.

    dx = (h - mean(h) - xhat * mean(h * xhat)) / sqrt(var + eps).
    """
    mu = reduce_mean(ctx, x, axes)
    xc = ctx.emit("Sub", [x, mu])
    var = reduce_mean(ctx, ctx.emit("Mul", [xc, xc]), axes)
    inv = ctx.emit("Reciprocal", [ctx.emit("Sqrt", [ctx.emit("Add", [var, ctx.fconst(eps)])])])
    xhat = ctx.emit("Mul", [xc, inv])
    t = ctx.emit("Sub", [h, reduce_mean(ctx, h, axes)])
    t = ctx.emit("Sub", [t, ctx.emit("Mul", [xhat, reduce_mean(ctx, ctx.emit("Mul", [h, xhat]), axes)])])
    return ctx.emit("Mul", [t, inv])


@rule("InstanceNormalization")
def instance_norm(ctx, node):
    """Per-sample, per-channel normalization over the spatial axes (Ulyanov et al., arXiv:1607.08022)."""
    x, scale = node.input[0], node.input[1]
    if ctx.needs(1) or ctx.needs(2):
        ctx.fail("gradients with respect to InstanceNormalization parameters are not supported")
    rank = ctx.rank(x)
    s = ctx.unsqueeze(scale, list(range(1, rank - 1)))
    h = ctx.emit("Mul", [ctx.gy(0), s])
    return [_normalize_grad(ctx, x, h, list(range(2, rank)), ctx.attr("epsilon", 1e-5)), None, None]


@rule("LayerNormalization", since=17)
def layer_norm(ctx, node):
    """Normalization over axes ``axis..rank-1`` (Ba et al., arXiv:1607.06450)."""
    x, scale = node.input[0], node.input[1]
    if ctx.needs(1) or (len(node.input) > 2 and ctx.needs(2)):
        ctx.fail("gradients with respect to LayerNormalization parameters are not supported")
    rank = ctx.rank(x)
    axis = ctx.attr("axis", -1) % rank
    axes = list(range(axis, rank))
    h = ctx.emit("Mul", [ctx.gy(0), scale])
    if ctx.attr("stash_type", 1) != 1 or ctx.types.get(x) not in (None, 1):
        dx = _normalize_grad(ctx, x, h, axes, ctx.attr("epsilon", 1e-5))
        return [dx] + [None] * (len(node.input) - 1)
    # the forward node also outputs its Mean and InvStdDev (float32 stash): xhat needs 2 ops
    # instead of recomputing both statistics (7 ops, 2 reductions over [N, T, C] per LayerNorm)
    mean, inv = _layer_norm_stats(ctx, node)
    xhat = ctx.emit("Mul", [ctx.emit("Sub", [x, mean]), inv])
    t = ctx.emit("Sub", [h, reduce_mean(ctx, h, axes)])
    t = ctx.emit("Sub", [t, ctx.emit("Mul", [xhat, reduce_mean(ctx, ctx.emit("Mul", [h, xhat]), axes)])])
    return [ctx.emit("Mul", [t, inv])] + [None] * (len(node.input) - 1)


def _layer_norm_stats(ctx, node):
    """Names of the forward LayerNormalization's Mean and InvStdDev outputs (added if absent)."""
    names = []
    for k, hint in ((1, "mean"), (2, "inv_std")):
        if len(node.output) > k and node.output[k]:
            names.append(node.output[k])
            continue
        name = ctx.fresh(hint)
        while len(node.output) < k:
            node.output.append("")
        if len(node.output) > k:
            node.output[k] = name
        else:
            node.output.append(name)
        names.append(name)
    return names


def _channel_window_sum(ctx, t, rank, size, before, after):
    """Sum of ``t`` over a window of channels [c - before, c + after] (a Conv on a new axis 1)."""
    u = ctx.unsqueeze(t, [1])
    ones = ctx.fconst(np.ones([1, 1, size] + [1] * (rank - 2)))
    nd = rank - 1
    pads = [before] + [0] * (nd - 1) + [after] + [0] * (nd - 1)
    s = ctx.emit("Conv", [u, ones], kernel_shape=[size] + [1] * (nd - 1), pads=pads)
    return ctx.squeeze(s, [1])


@rule("LRN")
def lrn(ctx, node):
    """y = x / d^beta, d = bias + alpha/size * sum_window x^2 (Krizhevsky et al. 2012, sec. 3.3).

    dx_i = g_i d_i^-beta - (2 alpha beta / size) x_i sum_{c: i in window(c)} g_c y_c / d_c.
    """
    x, y, g = node.input[0], node.output[0], ctx.gy(0)
    alpha, beta = ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75)
    bias, size = ctx.attr("bias", 1.0), ctx.attr("size")
    rank = ctx.rank(x)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    ssq = _channel_window_sum(ctx, ctx.emit("Mul", [x, x]), rank, size, lo, hi)
    d = ctx.emit("Add", [ctx.emit("Mul", [ssq, ctx.fconst(alpha / size)]), ctx.fconst(bias)])
    first = ctx.emit("Mul", [g, ctx.emit("Pow", [d, ctx.fconst(-beta)])])
    gyd = ctx.emit("Div", [ctx.emit("Mul", [g, y]), d])
    back = _channel_window_sum(ctx, gyd, rank, size, hi, lo)
    second = ctx.emit("Mul", [ctx.emit("Mul", [x, back]), ctx.fconst(2 * alpha * beta / size)])
    return [ctx.emit("Sub", [first, second])]
