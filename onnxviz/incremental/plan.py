"""The plan of an incremental occlusion run: pure geometry, no ONNX Runtime.

For every patch position, the changed rectangle of the input is pushed through the graph op by op
(:mod:`.rules`): a window op (Conv, pooling, Pad) grows it by its kernel and divides it by its
stride, a pointwise op keeps it, a branch merge takes the union. Each tensor gets one *window*
size, the largest changed rectangle over all positions (so the crop graphs have static shapes),
and per position the window's offset: the changed rectangle's start, shifted back inside the
tensor at the border. A node joins the *prefix* (run on crops) when a rule knows it, all its image
inputs are prefix tensors and its window covers at most ``max_share`` of its output; every other
node is the *suffix*, run on whole tensors. The prefix tensors the suffix reads are the *frontier*:
the crops are pasted into the cached original there.

Krypton (Nakandala, Kumar and Papakonstantinou, SIGMOD 2019, https://arxiv.org/abs/1810.08317,
sec. 3) describes the same propagation for three hand-written CNNs; here it runs on any ONNX graph
and stops (the cut) where a rule does not apply: global pooling, Flatten, Gemm, attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cost import BYTE_COST, plan_cost
from .graphs import constants, node_inputs
from .rules import Context, Unsupported, geometry

#: Window shares tried as the cut threshold; the cheapest plan wins.
SHARES = (0.25, 0.4, 0.55, 0.7, 0.85, 1.0)


@dataclass
class Window:
    """The crop of one tensor: ``size`` (h, w) on its spatial axes ``spatial``, top-left ``at``
    (positions, 2) int32, for a tensor of (full, batch first) ``shape``."""

    shape: tuple
    spatial: tuple[int, int]
    size: tuple[int, int]
    at: np.ndarray

    @property
    def channels(self) -> int:
        """Elements per spatial position (every non-batch, non-spatial axis)."""
        return int(np.prod([d for i, d in enumerate(self.shape) if i and i not in self.spatial]))

    @property
    def share(self) -> float:
        ya, xa = self.spatial
        return self.size[0] * self.size[1] / (self.shape[ya] * self.shape[xa])


@dataclass
class Read:
    """How one node input is fed in its crop graph.

    ``direct``: the input's own crop (same window as the node's output, no halo). Otherwise a
    *gather*: the window of size ``size`` at ``stride`` x (the output window's offset) of the input
    padded by ``pads`` (top, bottom, left, right) with ``value``, the cached original there with
    the input's crop pasted over it.
    """

    tensor: str
    direct: bool
    size: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    value: float = 0.0


@dataclass
class Step:
    """A prefix node: its index in the graph, how each image input is read, its output window."""

    index: int
    reads: dict[int, Read]
    kind: str


@dataclass
class Plan:
    """Where the graph is cut and how the prefix runs on crops.

    Attributes:
        input: the image input tensor.
        windows: tensor -> :class:`Window` for the input and every prefix tensor.
        steps: prefix nodes, in graph order.
        segments: steps grouped into crop graphs (a new one starts where a step gathers a tensor
            of the current one).
        frontier: prefix tensors (maybe the input) that the suffix reads whole.
        suffix: indices of the nodes run on whole tensors.
        cut: the first suffix nodes that read the frontier, as ``"op name"``.
        why: for each of ``cut``, why it does not run on crops.
        reason: why nothing can run incrementally (None when something can).
        flops: full (per image) and incremental (per position) floating-point operations.
        moved: bytes gathered and pasted per position.
        max_share: the cut threshold this plan was made with.
        cap: Krypton's projective-field threshold (None: exact).
        graph: the model it was made on when that is not the model's own graph (Pads folded
            into Convs: :func:`.graphs.fold_pads`); None otherwise.
        sized: prefix tensors whose shape alone the suffix reads (``Shape`` nodes: EfficientNet's
            flatten reads the input's), with their shapes: they are not pasted.
    """

    input: str
    windows: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    segments: list = field(default_factory=list)
    frontier: list = field(default_factory=list)
    suffix: list = field(default_factory=list)
    cut: list = field(default_factory=list)
    why: list = field(default_factory=list)
    reason: str | None = None
    flops: tuple[float, float] = (0.0, 0.0)
    moved: float = 0.0
    max_share: float = 1.0
    cap: float | None = None
    graph: object = None
    sized: dict = field(default_factory=dict)

    def positions(self, index) -> Plan:
        """The same plan (same windows and crop graphs) for the positions ``index`` only."""
        import copy

        sub = copy.copy(self)
        sub.windows = {t: Window(w.shape, w.spatial, w.size, np.ascontiguousarray(w.at[index]))
                       for t, w in self.windows.items()}
        return sub

    @property
    def skipped(self) -> float:
        """Share of the full run's floating-point operations the plan does not do."""
        full, inc = self.flops
        return 0.0 if full <= 0 else max(0.0, 1.0 - inc / full)

    @property
    def speedup(self) -> float:
        """The cost model's predicted speed-up over full inference."""
        full, inc = self.flops
        return full / max(inc + BYTE_COST * self.moved, 1.0)


def window_of(box: np.ndarray, shape, spatial) -> Window:
    """The fixed-size window holding every position's changed rectangle ``box`` (P, 4)."""
    ya, xa = spatial
    H, W = int(shape[ya]), int(shape[xa])
    h = int(min(H, max(1, (box[:, 2] - box[:, 0]).max())))
    w = int(min(W, max(1, (box[:, 3] - box[:, 1]).max())))
    at = np.stack([np.clip(box[:, 0], 0, H - h), np.clip(box[:, 1], 0, W - w)], 1)
    return Window(tuple(shape), tuple(spatial), (h, w), at.astype(np.int32))


def window_box(box: np.ndarray, axes, out_hw) -> np.ndarray:
    """Output rows/cols a window op can change, from its input's changed ``box`` (P, 4)."""
    out = np.empty_like(box)
    for d, ax in enumerate(axes):
        a, b = box[:, d], box[:, d + 2]
        lo = (a + ax.pb - ax.k) // ax.s + 1
        hi = (b - 1 + ax.pb) // ax.s + 1
        out[:, d] = np.clip(lo, 0, out_hw[d])
        out[:, d + 2] = np.clip(np.maximum(hi, lo), 0, out_hw[d])
    return out


def capped(box: np.ndarray, hw, cap: float) -> np.ndarray:
    """``box`` (P, 4) cut to at most ``ceil(cap x size)`` per axis, around each box's centre."""
    out = box.copy()
    for d in range(2):
        most = max(1, int(np.ceil(cap * hw[d])))
        size = box[:, d + 2] - box[:, d]
        lo = box[:, d] + np.maximum(size - most, 0) // 2
        out[:, d] = lo
        out[:, d + 2] = np.minimum(box[:, d + 2], lo + most)
    return out


def make_plan(proto, input_name: str, spatial, shapes: dict, rects: np.ndarray,
              score_output: str, max_share: float | None = None,
              cap: float | None = None) -> Plan:
    """The cheapest :class:`Plan` (over :data:`SHARES`, or the one ``max_share`` given).

    Args:
        proto: the model (topologically sorted, as ONNX requires).
        input_name: the image input.
        spatial: the input's (height, width) axes: (2, 3) for NCHW, (1, 2) for NHWC.
        shapes: tensor -> shape (batch first; other dims ints) for every tensor.
        rects: (P, 4) int changed rectangles ``(y0, x0, y1, x1)`` of the input, one per position.
        score_output: the tensor whose values are explained.
        max_share: the cut threshold; None tries each of :data:`SHARES`.
        cap: Krypton's projective-field threshold tau (approximate; None: exact): a window op's
            changed rectangle is cut to ``ceil(tau x size)`` rows and columns around its centre,
            and changes outside it are dropped (Nakandala et al. 2019, sec. 4.1).
    """
    shares = SHARES if max_share is None else (float(max_share),)
    consts = constants(proto)
    best = None
    for s in shares:  # one plan alive besides the best (each holds offsets for every position)
        plan = propagate(proto, input_name, spatial, shapes, rects, score_output, s,
                         consts=consts, cap=cap)
        if best is None or best.reason is not None or (
                plan.reason is None and plan.speedup > best.speedup):
            best = plan
    return best


def propagate(proto, input_name, spatial, shapes, rects, score_output, max_share=1.0,
              boxes: dict | None = None, consts: dict | None = None,
              cap: float | None = None) -> Plan:
    """The :class:`Plan` for one cut threshold ``max_share`` (see :func:`make_plan`).

    ``boxes``: a dict to receive every prefix tensor's changed rectangles (P, 4) ``(y0, x0, y1,
    x1)`` per position (for tests; otherwise each is dropped after its last reader).
    ``consts``: :func:`constants` of ``proto`` when already computed.
    """
    nodes = list(proto.graph.node)
    last = {t: i for i, n in enumerate(nodes) for t in node_inputs(n)}
    consts = constants(proto) if consts is None else consts
    plan = Plan(input=input_name, max_share=max_share, cap=cap)
    in_shape = tuple(shapes.get(input_name) or ())
    if len(in_shape) != 4 or tuple(spatial) not in ((2, 3), (1, 2)):
        plan.reason = "the image input is not a 4-D NCHW or NHWC tensor"
        return plan
    box = np.asarray(rects, np.int32).reshape(-1, 4)
    keep = boxes is not None
    boxes = {} if boxes is None else boxes
    boxes[input_name] = box
    plan.windows[input_name] = window_of(box, in_shape, spatial)
    ctx = Context(shapes, consts, {input_name: tuple(spatial)})
    dynamic = {input_name}
    prefix: list[int] = []
    why: dict[int, str] = {}
    for i, node in enumerate(nodes):
        ins = node_inputs(node)
        if not any(t in dynamic for t in ins):
            continue
        dynamic.update(o for o in node.output if o)
        try:
            step, out_box = _step(i, node, ctx, boxes, plan.windows, max_share, cap)
        except Unsupported as e:
            why[i] = str(e)
            continue
        prefix.append(i)
        plan.steps.append(step)
        boxes[node.output[0]] = out_box
        if not keep:
            for t in [t for t in node_inputs(node) if last.get(t) == i and t in boxes]:
                del boxes[t]
    if score_output in plan.windows:
        plan.reason = "the explained output is itself a local (per-position) tensor"
        return plan
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    _cut(plan, nodes, prefix, score_output, why, sizes=opset >= 10)  # the suffix Slices them
    if plan.reason is None:
        plan_cost(plan, nodes, ctx)
    return plan


def _step(i, node, ctx, boxes, windows, max_share, cap=None):
    if len([o for o in node.output if o]) != 1:
        raise Unsupported(f"{node.op_type} with several outputs")
    g = geometry(node, ctx)
    out = node.output[0]
    shape = ctx.shape(out)
    for j in g.inputs:
        if node.input[j] not in windows:
            raise Unsupported(f"input {j} of {node.op_type} is not a local tensor")
    src = node.input[g.inputs[0]]
    spatial = ctx.spatial[src]
    if g.kind == "window":
        ya, xa = spatial
        in_shape = ctx.shape(src)
        out_hw = tuple((in_shape[a] + ax.pb + ax.pe - ax.k) // ax.s + 1
                       for a, ax in zip(spatial, g.axes))
        if out_hw != (shape[ya], shape[xa]):
            raise Unsupported(f"{node.op_type} output size {out_hw} differs from the graph's "
                              f"{(shape[ya], shape[xa])}")
        box = window_box(boxes[src], g.axes, out_hw)
        if cap is not None:
            box = capped(box, out_hw, cap)
    else:
        if g.perm is not None:
            spatial = tuple(g.perm.index(a) for a in spatial)
            if spatial not in ((2, 3), (1, 2)):
                raise Unsupported("Transpose that reorders the spatial axes")
        box = boxes[src].copy()
        for j in g.inputs[1:]:
            other = boxes[node.input[j]]
            box[:, :2] = np.minimum(box[:, :2], other[:, :2])
            box[:, 2:] = np.maximum(box[:, 2:], other[:, 2:])
    if len(shape) != 4:
        raise Unsupported(f"{node.op_type} output is not 4-D")
    win = window_of(box, shape, spatial)
    if win.share > max_share:
        raise Unsupported(f"the changed region covers {win.share:.0%} of {out!r}")
    reads = {}
    for j in g.inputs:
        t = node.input[j]
        tw = windows[t]
        local = g.kind == "pointwise" or all(
            (ax.k, ax.s, ax.pb) == (1, 1, 0) for ax in g.axes)  # a 1x1 conv reads in place
        if local and tw.size == win.size and np.array_equal(tw.at, win.at):
            reads[j] = Read(t, True, win.size)
        elif g.kind == "window":
            ax_h, ax_w = g.axes
            size = ((win.size[0] - 1) * ax_h.s + ax_h.k, (win.size[1] - 1) * ax_w.s + ax_w.k)
            reads[j] = Read(t, False, size, (ax_h.s, ax_w.s), (ax_h.pb, ax_h.pe, ax_w.pb, ax_w.pe),
                            g.pad_value)
        else:
            reads[j] = Read(t, False, win.size)
    ctx.spatial[out] = spatial
    windows[out] = win
    return Step(i, reads, g.kind), box


def _cut(plan, nodes, prefix, score_output, why, sizes=True):
    """Suffix = the non-prefix nodes the score needs; frontier = prefix tensors they read (but
    those whose shape alone they read, with ``sizes``)."""
    in_prefix = set(prefix)
    produced = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    need, stack, reads = set(), [score_output], {}  # reads: suffix node -> its inputs
    while stack:
        t = stack.pop()
        if t in need:
            continue
        need.add(t)
        i = produced.get(t)
        if i is None or t in plan.windows:
            continue
        reads[i] = node_inputs(nodes[i])
        stack.extend(reads[i])
    plan.suffix = sorted(reads)
    readers: dict = {}  # tensor -> the suffix nodes reading it
    for i in plan.suffix:
        for t in reads[i]:
            readers.setdefault(t, []).append(nodes[i])
    frontier = [t for t in plan.windows if t in need and t in readers]
    sized = {t: plan.windows[t].shape for t in frontier if all(
        n.op_type == "Shape" for n in readers[t]) and all(
        isinstance(d, int) for d in plan.windows[t].shape[1:])}
    if sizes and len(sized) < len(frontier):  # the suffix reads only their shapes: no paste
        plan.sized = sized
        frontier = [t for t in frontier if t not in sized]
    plan.frontier = frontier
    if not frontier or frontier == [plan.input]:
        first = min((i for i in why if i in reads), default=None)
        plan.reason = ("no op can run on crops" + (
            f": {nodes[first].op_type} {nodes[first].name!r}: {why[first]}" if first is not None
            else ""))
        return
    # keep the prefix steps the frontier needs
    keep, stack = set(), list(frontier)
    while stack:
        t = stack.pop()
        i = produced.get(t)
        if i is None or i not in in_prefix or i in keep:
            continue
        keep.add(i)
        stack.extend(nodes[i].input)
    plan.steps = [s for s in plan.steps if s.index in keep]
    for t in list(plan.windows):
        if t != plan.input and produced.get(t) not in keep:
            del plan.windows[t]
    first = [i for i in plan.suffix if any(t in plan.frontier for t in reads[i])]
    plan.cut = [f"{nodes[i].op_type} {nodes[i].name or nodes[i].output[0]!r}" for i in first]
    plan.why = [why.get(i, "") for i in first]
    plan.segments = _segments(plan, nodes)


def _segments(plan, nodes) -> list[list[Step]]:
    segments, current, made = [], [], set()
    for step in plan.steps:
        gathers = {r.tensor for r in step.reads.values() if not r.direct}
        if current and gathers & made:
            segments.append(current)
            current, made = [], set()
        current.append(step)
        made.add(nodes[step.index].output[0])
    if current:
        segments.append(current)
    return segments
