"""Gradients of pooling: MaxPool (via its Indices output), AveragePool, global pools."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import helper

from ..registry import rule
from .nn import conv_pads


def _pool_geometry(ctx, node):
    kernel = list(ctx.attr("kernel_shape"))
    nd = len(kernel)
    strides = list(ctx.attr("strides", [1] * nd))
    dilations = list(ctx.attr("dilations", [1] * nd))
    pads = conv_pads(ctx, node, node.input[0], kernel, strides, dilations)
    return kernel, strides, dilations, pads


def _indices_output(ctx, node) -> str:
    """Make the forward MaxPool node also output its Indices (flat positions in the input)."""
    if ctx.opset < 8:
        ctx.fail("MaxPool gradients need the Indices output of MaxPool-8 (re-export at opset >= 8)")
    if ctx.attr("storage_order", 0) != 0:
        ctx.fail("MaxPool with storage_order=1 is not supported")
    if len(node.output) > 1 and node.output[1]:
        return node.output[1]
    name = ctx.fresh("indices")
    if len(node.output) > 1:
        node.output[1] = name
    else:
        node.output.append(name)
    return name


def _scatter(ctx, zeros_flat, idx, upd, reduction=None):
    if ctx.opset >= 11:
        return ctx.emit("ScatterElements", [zeros_flat, idx, upd], axis=0, reduction=reduction)
    if ctx.opset >= 9:
        return ctx.emit("Scatter", [zeros_flat, idx, upd], axis=0)
    ctx.fail("MaxPool gradients need opset >= 9 (Scatter)")


def _every(ctx, t, offsets, period):
    """``t[:, :, o0::p0, o1::p1, ...]`` (strided Slice from opset 10, Gathers before)."""
    nd = len(period)
    axes = list(range(2, 2 + nd))
    if ctx.opset >= 10:
        return ctx.slice(t, list(offsets), [2**62] * nd, axes, list(period))
    out_sp = ctx.static_dims(ctx.node.output[0], axes)
    for a, o, p, n in zip(axes, offsets, period, out_sp):
        if p > 1:
            t = ctx.emit("Gather", [t, ctx.iconst(np.arange(o, n, p))], axis=a)
    return t


@rule("MaxPool")
def max_pool(ctx, node):
    """Route each output's gradient to its argmax: a scatter-add of g at the Indices.

    From opset 16 one ScatterElements(reduction="add"); before, the output grid is split into
    classes of non-overlapping windows (strided slices) and each is scattered without reduction.
    """
    x, g = node.input[0], ctx.gy(0)
    idx = _indices_output(ctx, node)
    kernel, strides, dilations, _ = _pool_geometry(ctx, node)
    flat = ctx.iconst([-1])
    zeros = ctx.emit("Reshape", [ctx.zeros_like(x), flat])
    if ctx.opset >= 16:
        parts = [ctx.emit("ScatterElements", [zeros, ctx.emit("Reshape", [idx, flat]),
                                              ctx.emit("Reshape", [g, flat])],
                          axis=0, reduction="add")]
    else:
        period = [-(-(d * (k - 1) + 1) // s) for k, s, d in zip(kernel, strides, dilations)]
        parts = []
        nd = len(kernel)
        for offs in itertools.product(*[range(p) for p in period]):
            gi, ii = g, idx
            if any(p > 1 for p in period):
                gi, ii = _every(ctx, g, offs, period), _every(ctx, idx, offs, period)
            parts.append(_scatter(ctx, zeros, ctx.emit("Reshape", [ii, flat]),
                                  ctx.emit("Reshape", [gi, flat])))
    dx = parts[0] if len(parts) == 1 else ctx.emit("Sum", parts)
    return [ctx.reshape_like(dx, x)]


def _avg_weights(ctx, node, in_sp, out_sp, kernel, strides, dilations, pads) -> np.ndarray:
    """1 / divisor of every output position, measured on ONNX Runtime's own AveragePool."""
    import onnxruntime as ort

    nd = len(kernel)
    shape = [1, 1, *in_sp]
    probe = helper.make_node("AveragePool", ["x"], ["y"], **{
        a.name: helper.get_attribute_value(a) for a in node.attribute})
    graph = helper.make_graph(
        [probe], "probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ctx.opset)])
    m.ir_version = min(m.ir_version, 8)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # the declared output size may differ from the computed one
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ones = sess.run(None, {"x": np.ones(shape, np.float32)})[0].reshape(out_sp).astype(np.float64)
    # number of real (non-padding) inputs under each window
    count = np.ones(out_sp)
    for a in range(nd):
        pos = np.arange(out_sp[a])[:, None] * strides[a] - pads[a] + np.arange(kernel[a]) * dilations[a]
        valid = ((pos >= 0) & (pos < in_sp[a])).sum(1).astype(np.float64)
        count = count * valid.reshape([-1 if i == a else 1 for i in range(nd)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, ones / np.maximum(count, 1), 0.0)


@rule("AveragePool")
def average_pool(ctx, node):
    """Adjoint of the windowed mean: scale g by 1/divisor, spread it with a ones ConvTranspose."""
    x, y, g = node.input[0], node.output[0], ctx.gy(0)
    kernel, strides, dilations, pads = _pool_geometry(ctx, node)
    nd = len(kernel)
    in_sp = ctx.static_dims(x, range(2, 2 + nd))
    out_sp = ctx.static_dims(y, range(2, 2 + nd))
    w = _avg_weights(ctx, node, in_sp, out_sp, kernel, strides, dilations, pads)
    gw = ctx.emit("Mul", [g, ctx.fconst(w.reshape([1, 1, *out_sp]))])
    g1 = ctx.emit("Reshape", [gw, ctx.iconst([-1, 1, *out_sp])])
    pe, op = [], []
    for a in range(nd):
        total = strides[a] * (out_sp[a] - 1) + dilations[a] * (kernel[a] - 1) + 1 - pads[a] - in_sp[a]
        pe.append(max(total, 0))
        op.append(max(-total, 0))
    dx = ctx.emit("ConvTranspose", [g1, ctx.fconst(np.ones([1, 1, *kernel]))], kernel_shape=kernel,
                  strides=strides, dilations=dilations, pads=pads[:nd] + pe,
                  output_padding=op if any(op) else None)
    return [ctx.reshape_like(dx, x)]


@rule("GlobalAveragePool")
def global_average_pool(ctx, node):
    x = node.input[0]
    sp = ctx.static_dims(x, range(2, ctx.rank(x)))
    g = ctx.emit("Mul", [ctx.gy(0), ctx.fconst(1.0 / float(np.prod(sp)))])
    return [ctx.emit("Expand", [g, ctx.shape_of(x)])]


@rule("GlobalMaxPool")
def global_max_pool(ctx, node):
    x, y = node.input[0], node.output[0]
    hit = ctx.emit("Not", [ctx.emit("Less", [x, y])])
    return [ctx.mask(hit, ctx.emit("Expand", [ctx.gy(0), ctx.shape_of(x)]))]
