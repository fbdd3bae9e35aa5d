"""Gradients of Resize and Upsample (nearest, linear, cubic).

These modes are separable: along each resized axis the output is ``P^T x`` for an interpolation
matrix ``P`` [n_in, n_out]. The matrix is measured once, at rewrite time, by running the node's own
op with its own attributes on an identity matrix in ONNX Runtime, so every coordinate-transform
and rounding mode matches the runtime exactly. The gradient is then ``P g`` along each axis: one
MatMul per resized axis.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..registry import rule

_DROP = {"axes", "keep_aspect_ratio_policy"}


def _probe(ctx, node, n_in: int, n_out: int, scale: float | None, roi) -> np.ndarray:
    """Interpolation matrix P [n_in, n_out] of ``node`` along one axis."""
    import onnxruntime as ort

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in _DROP}
    if "extrapolation_value" in attrs:
        attrs["extrapolation_value"] = 0.0
    inits, ins = [], ["x"]
    if node.op_type == "Upsample" and ctx.opset < 9:
        attrs["scales"] = [1.0, 1.0, 1.0, float(scale)]
    elif node.op_type == "Upsample" or ctx.opset == 10:
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 1, scale]))
        ins.append("scales")
    else:
        r = [0, 0, 0, roi[0], 1, 1, 1, roi[1]] if roi is not None else []
        inits.append(helper.make_tensor("roi", TensorProto.FLOAT, [len(r)], r))
        if scale is not None:
            inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 1, scale]))
            ins += ["roi", "scales"]
        else:
            inits.append(helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 1, n_in, n_out]))
            ins += ["roi", "", "sizes"]
    probe = helper.make_node(node.op_type, ins, ["y"], **attrs)
    graph = helper.make_graph(
        [probe], "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, n_in, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ctx.opset)])
    m.ir_version = min(m.ir_version, 8)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    eye = np.eye(n_in, dtype=np.float32).reshape(1, 1, n_in, n_in)
    p = sess.run(None, {"x": eye})[0].reshape(n_in, -1)
    if p.shape[1] != n_out:
        ctx.fail(f"probe of the interpolation gave {p.shape[1]} outputs, expected {n_out}")
    return p.astype(np.float64)


def _scales_roi(ctx, node, rank):
    if node.op_type == "Upsample":
        s = ctx.attr("scales") if ctx.opset < 9 else ctx.const_value(ctx.input(1))
        return (None if s is None else [float(v) for v in np.ravel(s)]), None
    if ctx.opset == 10:
        s = ctx.const_value(ctx.input(1))
        return (None if s is None else [float(v) for v in np.ravel(s)]), None
    roi = ctx.const_value(ctx.input(1)) if ctx.input(1) else None
    s = ctx.const_value(ctx.input(2)) if ctx.input(2) else None
    s = None if s is None or s.size == 0 else [float(v) for v in np.ravel(s)]
    axes = ctx.attr("axes")
    if axes is not None and s is not None:  # opset 18: scales for the listed axes only
        full = [1.0] * rank
        for a, v in zip(axes, s):
            full[a % rank] = v
        s = full
    roi = None if roi is None or roi.size == 0 else np.ravel(roi).astype(float)
    return s, roi


def _resize(ctx, node):
    x, y, g = node.input[0], node.output[0], ctx.gy(0)
    if ctx.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        ctx.fail("Resize with keep_aspect_ratio_policy other than 'stretch' is not supported")
    xs, ys = ctx.shape(x), ctx.shape(y)
    if xs is None or ys is None:
        ctx.fail("Resize gradients need the ranks and sizes of its input and output")
    rank = len(xs)
    scales, roi = _scales_roi(ctx, node, rank)
    tf_crop = ctx.attr("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize"
    for a in range(rank):
        s = scales[a] if scales is not None else None
        if (s is None or s == 1.0) and not tf_crop and (xs[a] == ys[a]):
            continue  # not resized (a symbolic batch axis has None on both sides)
        if xs[a] is None or ys[a] is None:
            ctx.fail(f"Resize gradients need a static size along resized axis {a}")
        r = (roi[a], roi[rank + a]) if roi is not None else None
        p = _probe(ctx, node, xs[a], ys[a], s, r)
        if a == rank - 1:
            g = ctx.emit("MatMul", [g, ctx.fconst(p.T)])
        elif a == rank - 2:
            g = ctx.emit("MatMul", [ctx.fconst(p), g])
        else:
            perm = list(range(rank))
            perm[a], perm[-1] = perm[-1], perm[a]
            t = ctx.emit("MatMul", [ctx.emit("Transpose", [g], perm=perm), ctx.fconst(p.T)])
            g = ctx.emit("Transpose", [t], perm=perm)
    return [g] + [None] * (len(node.input) - 1)


rule("Resize", nondiff=(1, 2, 3))(_resize)
rule("Upsample", nondiff=(1,))(_resize)
