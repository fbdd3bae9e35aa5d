"""The cost model of an incremental plan: floating-point operations and bytes moved.

The full run costs every node's FLOPs; the incremental run costs each prefix node's FLOPs times
its window's share of its output, every suffix node in full, and :data:`BYTE_COST` per byte the
gathers and the frontier pastes move. ``Plan.speedup`` is their ratio.
"""

from __future__ import annotations

import numpy as np

from .rules import Unsupported

#: Cost of moving one byte (gathers and pastes) in floating-point operations, for the cost model:
#: about what 2 cores reach in the crop graphs' convolutions (~150 GFLOP/s, ResNet-50's layer3
#: under ONNX Runtime's profiler) over what the gathers copy (~4-5 GB/s on windows of a dozen
#: values a row). With 8, ResNet-18's plan ran layer4 on crops the size of the whole tensor (the
#: gathers then copy it whole, for each position): 1.6x where cutting at 0.7 gives 1.8x.
BYTE_COST = 32.0


def plan_cost(plan, nodes, ctx) -> None:
    """Set ``plan.flops`` (full per image, incremental per position) and ``plan.moved`` (bytes
    gathered and pasted per position)."""
    full = inc = 0.0
    prefix = {s.index: s for s in plan.steps}
    for i, node in enumerate(nodes):
        f = node_flops(node, ctx)
        full += f
        if i in prefix:
            inc += f * plan.windows[node.output[0]].share
        elif i in plan.suffix:
            inc += f
    moved = 0.0
    for s in plan.steps:
        for r in s.reads.values():
            if not r.direct:
                moved += 4 * plan.windows[r.tensor].channels * r.size[0] * r.size[1]
    for t in plan.frontier:
        w = plan.windows[t]
        moved += 4 * w.channels * w.shape[w.spatial[0]] * w.shape[w.spatial[1]]
    plan.flops, plan.moved = (full, inc), moved


def node_flops(node, ctx) -> float:
    """Floating-point operations of one node for one image (multiply-adds count 2)."""
    try:
        out = ctx.shape(node.output[0]) if node.output and node.output[0] else ()
    except Unsupported:
        return 0.0
    n_out = float(np.prod(out[1:])) if len(out) > 1 else 1.0
    try:
        if node.op_type == "Conv":
            w = ctx.consts.shape(node.input[1]) if node.input[1] in ctx.consts else ctx.shape(
                node.input[1])[1:]
            return 2.0 * n_out * float(np.prod(w[1:]))
        if node.op_type in ("Gemm", "MatMul"):
            a = ctx.shape(node.input[0])
            trans = node.op_type == "Gemm" and any(
                x.name == "transA" and x.i for x in node.attribute)
            return 2.0 * n_out * float(a[-2] if trans and len(a) > 1 else a[-1])
        if node.op_type in ("MaxPool", "AveragePool"):
            k = next(x.ints for x in node.attribute if x.name == "kernel_shape")
            return n_out * float(np.prod(k))
    except (Unsupported, StopIteration, IndexError, TypeError):
        return n_out
    return n_out
