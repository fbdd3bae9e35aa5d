"""Gradients of data-movement ops: reshapes, transposes, concatenation, slicing, padding, gathers."""

from __future__ import annotations

import numpy as np

from ..registry import rule


def _reshape_back(ctx, node):
    return [ctx.reshape_like(ctx.gy(0), node.input[0])] + [None] * (len(node.input) - 1)


for _op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
    rule(_op, nondiff=(1,))(_reshape_back)


@rule("Transpose")
def transpose(ctx, node):
    perm = ctx.attr("perm") or list(range(ctx.rank(node.input[0])))[::-1]
    return [ctx.emit("Transpose", [ctx.gy(0)], perm=[int(i) for i in np.argsort(perm)])]


@rule("Concat")
def concat(ctx, node):
    rank = ctx.rank(node.output[0])
    axis = ctx.attr("axis") % rank
    sizes = [ctx.shape(x)[axis] if ctx.shape(x) else None for x in node.input]
    if any(s is None for s in sizes):
        ctx.fail("Concat gradients need static sizes along the concatenation axis")
    parts = ctx.split(ctx.gy(0), axis, sizes)
    return [p if ctx.needs(i) else None for i, p in enumerate(parts)]


@rule("Split", nondiff=(1,))
def split(ctx, node):
    rank = ctx.rank(node.input[0])
    axis = ctx.attr("axis", 0) % rank
    grads = [ctx.gy(i) or ctx.zeros_like(o) for i, o in enumerate(node.output)]
    return [ctx.emit("Concat", grads, axis=axis)] + [None] * (len(node.input) - 1)


def _scatter_axis(ctx, g, axis, n, positions, rank):
    """Place slices of ``g`` along ``axis`` at ``positions`` of an axis of length ``n`` (zeros
    elsewhere): a Gather from ``g`` padded with one zero slice. Positions must be distinct."""
    m = len(positions)
    index = np.full(n, m, np.int64)
    index[np.asarray(positions, np.int64)] = np.arange(m)
    pads = [0] * (2 * rank)
    pads[rank + axis] = 1
    padded = ctx.pad(g, pads)
    return ctx.emit("Gather", [padded, ctx.iconst(index)], axis=axis)


def _slice_params(ctx, node, rank):
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes = ctx.attr("axes", list(range(len(starts))))
        return list(starts), list(ends), list(axes), [1] * len(starts)
    vals = [ctx.const_value(ctx.input(i)) for i in range(1, 5)]
    if vals[0] is None or vals[1] is None or (ctx.input(3) and vals[2] is None) or (
            ctx.input(4) and vals[3] is None):
        ctx.fail("Slice gradients need constant starts/ends/axes/steps")
    starts, ends = [int(v) for v in np.ravel(vals[0])], [int(v) for v in np.ravel(vals[1])]
    axes = [int(v) for v in np.ravel(vals[2])] if vals[2] is not None else list(range(len(starts)))
    steps = [int(v) for v in np.ravel(vals[3])] if vals[3] is not None else [1] * len(starts)
    return starts, ends, [a % rank for a in axes], steps


def _whole_axis(start, end, step):
    """Whether a Slice keeps an axis whole whatever its length (start 0, end "to the end", step 1;
    exporters write "to the end" as INT32_MAX or INT64_MAX)."""
    return step == 1 and start == 0 and end >= 2**31 - 1


@rule("Slice", nondiff=(1, 2, 3, 4))
def slice_(ctx, node):
    """Zero-pad the gradient back to the input's extent (Gather-scatter for strided slices)."""
    x, g = node.input[0], ctx.gy(0)
    shape = ctx.shape(x)
    rank = len(shape) if shape is not None else ctx.rank(x)
    starts, ends, axes, steps = _slice_params(ctx, node, rank)
    pads = [0] * (2 * rank)
    for a, s, e, st in zip(axes, starts, ends, steps):
        n = shape[a] if shape is not None else None
        if n is None and _whole_axis(s, e, st):
            continue  # e.g. the batch axis of a Keras Cropping2D: nothing to pad back
        if n is None:
            ctx.fail(f"Slice gradients need a static size along axis {a}")
        sel = list(range(n))[slice(s, e, st)]
        if not sel:
            return [ctx.zeros_like(x)] + [None] * (len(node.input) - 1)
        if st == 1:
            pads[a], pads[rank + a] = sel[0], n - 1 - sel[-1]
        else:
            g = _scatter_axis(ctx, g, a, n, sel, rank)
    return [ctx.pad(g, pads)] + [None] * (len(node.input) - 1)


def _pad_params(ctx, node, rank):
    if ctx.opset < 11:
        pads = list(ctx.attr("pads", ctx.attr("paddings", [0] * (2 * rank))))
        return pads, ctx.attr("mode", "constant")
    pv = ctx.const_value(ctx.input(1))
    if pv is None:
        ctx.fail("Pad gradients need constant pads")
    pv = [int(p) for p in np.ravel(pv)]
    axes = ctx.const_value(ctx.input(3)) if ctx.input(3) else None
    if axes is None:
        return pv, ctx.attr("mode", "constant")
    axes = [int(a) % rank for a in np.ravel(axes)]
    pads = [0] * (2 * rank)
    for j, a in enumerate(axes):
        pads[a], pads[rank + a] = pv[j], pv[len(axes) + j]
    return pads, ctx.attr("mode", "constant")


def _reverse(ctx, t, axis, n):
    return ctx.emit("Gather", [t, ctx.iconst(np.arange(n)[::-1].copy())], axis=axis)


@rule("Pad", nondiff=(1, 2, 3))
def pad(ctx, node):
    """constant: crop; reflect/edge: crop and fold the padded borders back onto their sources."""
    x, g = node.input[0], ctx.gy(0)
    rank = ctx.rank(x)
    pads, mode = _pad_params(ctx, node, rank)
    big = 2**62
    for a in range(rank):
        pb, pe = pads[a], pads[rank + a]
        if pb == 0 and pe == 0:
            continue
        full = g
        crop_end = -pe if pe > 0 else big
        g = ctx.slice(full, [max(pb, 0)], [crop_end], [a])
        if pb < 0 or pe < 0:  # negative pads cropped the input: put zeros back
            back = [0] * (2 * rank)
            back[a], back[rank + a] = max(-pb, 0), max(-pe, 0)
            g = ctx.pad(g, back)
        if mode == "constant" or (pb <= 0 and pe <= 0):
            continue
        n = ctx.static_shape(x)[a]
        if mode == "reflect":
            if pb > 0:
                part = _reverse(ctx, ctx.slice(full, [0], [pb], [a]), a, pb)
                g = ctx.emit("Add", [g, _place(ctx, part, a, 1, n - 1 - pb, rank)])
            if pe > 0:
                part = _reverse(ctx, ctx.slice(full, [-pe], [big], [a]), a, pe)
                g = ctx.emit("Add", [g, _place(ctx, part, a, n - 1 - pe, 1, rank)])
        elif mode == "edge":
            if pb > 0:
                part = ctx.reduce_sum(ctx.slice(full, [0], [pb], [a]), [a], keepdims=1)
                g = ctx.emit("Add", [g, _place(ctx, part, a, 0, n - 1, rank)])
            if pe > 0:
                part = ctx.reduce_sum(ctx.slice(full, [-pe], [big], [a]), [a], keepdims=1)
                g = ctx.emit("Add", [g, _place(ctx, part, a, n - 1, 0, rank)])
        else:
            ctx.fail(f"Pad mode {mode!r} has no gradient rule (constant, reflect, edge do)")
    return [g] + [None] * (len(node.input) - 1)


def _place(ctx, t, axis, before, after, rank):
    pads = [0] * (2 * rank)
    pads[axis], pads[rank + axis] = before, after
    return ctx.pad(t, pads)


@rule("Gather", nondiff=(1,))
def gather(ctx, node):
    """Scatter-add of g back to the gathered positions.

    Constant indices (any rank, e.g. a dynamo ``as_strided`` view with a fixed batch) scatter with
    Gathers from the zero-padded gradient, one per group of distinct positions, which every
    provider runs fast. Indices computed at run time (a dynamo ``as_strided`` whose index map
    follows the batch) use ``ScatterND`` with ``reduction="add"`` (opset 16+).
    """
    x, g = node.input[0], ctx.gy(0)
    rank = ctx.rank(x)
    axis = ctx.attr("axis", 0) % rank
    idx = ctx.const_value(node.input[1])
    n = ctx.shape(x)[axis]
    if idx is None or n is None:
        return [_gather_scatter_nd(ctx, node, x, g, rank, axis), None]
    if idx.ndim == 0:
        g = ctx.unsqueeze(g, [axis])
    elif idx.ndim > 1:
        g = _flatten_index_axes(ctx, g, x, axis, idx)
    idx = np.ravel(idx).astype(np.int64) % n
    # split the positions into groups without repeats, one Gather-scatter per group
    seen: dict[int, int] = {}
    groups: list[list[int]] = []
    for j, i in enumerate(idx):
        k = seen.get(int(i), 0)
        seen[int(i)] = k + 1
        if k == len(groups):
            groups.append([])
        groups[k].append(j)
    parts = []
    for grp in groups:
        gg = g if len(grp) == len(idx) else ctx.emit("Gather", [g, ctx.iconst(grp)], axis=axis)
        parts.append(_scatter_axis(ctx, gg, axis, n, [int(idx[j]) for j in grp], rank))
    return [parts[0] if len(parts) == 1 else ctx.emit("Sum", parts), None]


def _flatten_index_axes(ctx, g, x, axis, idx):
    """Merge the index axes of a Gather's output gradient into one (length ``idx.size``)."""
    trail = (ctx.shape(x) or [])[axis + 1:]
    if sum(d is None for d in trail) > 1:
        ctx.fail("Gather gradients with multi-dimensional indices need static trailing sizes")
    target = [0] * axis + [int(idx.size)] + [-1 if d is None else int(d) for d in trail]
    return ctx.emit("Reshape", [g, ctx.iconst(target)])


def _gather_scatter_nd(ctx, node, x, g, rank, axis):
    """Gradient of a Gather whose indices are only known at run time: ScatterND(add) into zeros,
    with the gathered axis moved to the front."""
    if ctx.opset < 16:
        ctx.fail("Gather gradients with indices computed at run time need opset >= 16 "
                 "(ScatterND with reduction='add'), or constant indices")
    idx = node.input[1]
    irank = ctx.rank(idx)
    grank = ctx.rank(node.output[0])
    perm = [axis] + [a for a in range(rank) if a != axis]
    xshape = ctx.shape_of(x)
    if axis:
        xshape = ctx.emit("Gather", [xshape, ctx.iconst(perm)], axis=0)
        # g: x[:axis] + idx + x[axis+1:]  ->  idx + x[:axis] + x[axis+1:]
        gperm = list(range(axis, axis + irank)) + list(range(axis)) + list(
            range(axis + irank, grank))
        g = ctx.emit("Transpose", [g], perm=gperm)
    value = onnx_zero(ctx)
    zeros = ctx.emit("ConstantOfShape", [xshape], value=value)
    where = ctx.unsqueeze(idx, [irank])
    out = ctx.emit("ScatterND", [zeros, where, g], reduction="add")
    if axis:
        out = ctx.emit("Transpose", [out], perm=[int(i) for i in np.argsort(perm)])
    return out


def onnx_zero(ctx):
    from onnx import helper

    return helper.make_tensor("value", ctx.dtype, [1], [0])


@rule("Expand", nondiff=(1,))
def expand(ctx, node):
    return [ctx.unbroadcast(ctx.gy(0), node.input[0]), None]


@rule("Tile", nondiff=(1, 2))
def tile(ctx, node):
    """Sum the tiles: reshape g to [r0, d0, r1, d1, ...] and reduce the repeat axes."""
    x = node.input[0]
    reps = ctx.const_value(node.input[1])
    shape = ctx.shape(x)
    if reps is None or shape is None or sum(d is None for d in shape) > 1:
        ctx.fail("Tile gradients need constant repeats and a static input shape")
    reps = [int(r) for r in np.ravel(reps)]
    target = []
    for r, d in zip(reps, shape):
        target += [r, -1 if d is None else d]
    t = ctx.emit("Reshape", [ctx.gy(0), ctx.iconst(target)])
    return [ctx.reduce_sum(t, list(range(0, 2 * len(reps), 2)), keepdims=0)] + [None] * (
        len(node.input) - 1)


def _chw(ctx, x):
    s = ctx.shape(x)
    if s is None or len(s) != 4 or any(d is None for d in s[1:]):
        ctx.fail(f"needs a static [N, C, H, W] shape for {x!r}, got {s}")
    return s[1:]


def _space_depth(ctx, g, fwd_shape, perm, out_like):
    t = ctx.emit("Reshape", [g, ctx.iconst(fwd_shape)])
    t = ctx.emit("Transpose", [t], perm=[int(i) for i in np.argsort(perm)])
    return ctx.reshape_like(t, out_like)


@rule("DepthToSpace")
def depth_to_space(ctx, node):
    """Undo the DCR/CRD rearrangement by transposing the gradient back."""
    x, b = node.input[0], ctx.attr("blocksize")
    c, h, w = _chw(ctx, x)
    c = c // (b * b)
    if ctx.attr("mode", "DCR") == "DCR":  # [N, b, b, C, H, W] -> perm [0, 3, 4, 1, 5, 2]
        perm = [0, 3, 4, 1, 5, 2]
        tshape = [-1, c, h, b, w, b]
    else:  # CRD: [N, C, b, b, H, W] -> perm [0, 1, 4, 2, 5, 3]
        perm = [0, 1, 4, 2, 5, 3]
        tshape = [-1, c, h, b, w, b]
    return [_space_depth(ctx, ctx.gy(0), tshape, perm, x)]


@rule("SpaceToDepth")
def space_to_depth(ctx, node):
    """[N, C, H/b, b, W/b, b] -> perm [0, 3, 5, 1, 2, 4]; the gradient transposes back."""
    x, b = node.input[0], ctx.attr("blocksize")
    c, h, w = _chw(ctx, x)
    perm = [0, 3, 5, 1, 2, 4]
    tshape = [-1, b, b, c, h // b, w // b]
    return [_space_depth(ctx, ctx.gy(0), tshape, perm, x)]
