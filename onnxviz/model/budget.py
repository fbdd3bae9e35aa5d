"""What the runs made while loading a model will cost, decided from the file before anything runs.

Loading runs the model a few times (the opset and batch checks, the first scores, the shape probe of
:mod:`.shapes`). A file of a few bytes can make those runs unbounded, in two ways:

- **memory.** A 1 KB file can declare a fixed ``1 x 3 x 8000 x 8000`` input: one Conv on it holds
  gigabytes. :func:`image_bytes` estimates, from the declared shapes alone (ONNX static inference at
  the probe's input size), the peak memory one image holds in an ONNX Runtime run: the tensors
  alive at each node, and for each Conv the copies ONNX Runtime's blocked (NCHWc) kernels make of
  its input and its output padded to 16 channels. :func:`probe_plan` sizes the load-time runs
  against the memory budget with it: at the declared size when they fit; else at a smaller spatial
  size, when the graph gives the same outputs' shape there (a fully convolutional model); else one
  image at a time; else the model is refused with the numbers.
- **time.** A ``Loop`` whose trip count is a constant such as 2^62 and whose condition stays true
  never ends. :func:`refuse_endless_loops` refuses it from its constants, before anything runs; any
  other slow graph is stopped by the probe time limit (:data:`onnxviz.limits.PROBE_SECONDS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import limits
from ..errors import ModelError
from .inputs import InputSpec

#: Channels of ONNX Runtime's blocked (NCHWc) Conv layout: outputs are padded to a multiple of it.
NCHWC_BLOCK = 16

#: Fastest a Loop iteration runs in ONNX Runtime, in seconds (an empty body took 6.4 us on a
#: 2-core machine): a Loop that must run more than ``PROBE_SECONDS / LOOP_SECONDS`` iterations
#: cannot end within the probe time limit.
LOOP_SECONDS = 1e-6

#: Longest side of a shrunk probe input (the probes check behaviour, and small runs are fast)
#: and the smallest side one is shrunk to.
PROBE_SIDE, MIN_PROBE_SIDE = 512, 16

#: Copies of the weights held while loading: the parsed file, a probe session, the final session.
WEIGHT_COPIES = 3

#: Initializers with more elements than this are given to static inference without their values.
_STUB_ELEMENTS = 1 << 12


@dataclass(frozen=True)
class ProbePlan:
    """How the load-time runs are made.

    Attributes:
        size: the (H, W) they run at; the declared size unless it had to shrink.
        batches: the largest batch they use: 2, or 1 when two images do not fit.
        need: estimated bytes of those runs (weights included).
        note: what was changed and why, for ``onnxviz inspect``; None when nothing was.
    """

    size: tuple[int, int]
    batches: int
    need: int
    note: str | None = None


def weight_bytes(proto: onnx.ModelProto) -> int:
    """Bytes of the model's initializers (Constant nodes included)."""
    total = 0
    for t in proto.graph.initializer:
        total += _tensor_bytes(t)
    for n in proto.graph.node:
        if n.op_type == "Constant":
            total += sum(_tensor_bytes(a.t) for a in n.attribute if a.HasField("t"))
    return total


def _tensor_bytes(t: TensorProto) -> int:
    try:
        item = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    except Exception:  # noqa: BLE001 - strings and unknown types: count a byte per element
        item = 1
    return int(math.prod(t.dims)) * item


def resized(proto: onnx.ModelProto, spec: InputSpec, size, batch: int | None = None,
            stub: bool = False) -> onnx.ModelProto:
    """A copy of ``proto`` whose image input is declared at spatial ``size`` (and ``batch`` when
    given), with the inferred shapes that depend on it dropped (outputs keep their type only).

    Args:
        stub: give large initializers without their values (enough for static inference, which
            reads their dims; not runnable).
    """
    out = _shell(proto) if stub else onnx.ModelProto()
    if not stub:
        out.CopyFrom(proto)
    g = out.graph
    h, w = size
    for vi in g.input:
        if vi.name != spec.name:
            continue
        dims = vi.type.tensor_type.shape.dim
        axes = (2, 3) if spec.layout == "NCHW" else (1, 2)
        for axis, value in zip(axes, (h, w)):
            dims[axis].Clear()
            dims[axis].dim_value = int(value)
        if batch is not None:
            dims[0].Clear()
            dims[0].dim_value = int(batch)
    for vi in g.output:
        if vi.type.HasField("tensor_type"):
            vi.type.tensor_type.ClearField("shape")
    del g.value_info[:]
    return out


def _shell(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` for static inference: large initializers keep their dims, not their
    data, so a 2 GB file is never copied."""
    out = onnx.ModelProto()
    out.ir_version = proto.ir_version
    out.opset_import.extend(proto.opset_import)
    out.functions.extend(proto.functions)
    g, src = out.graph, proto.graph
    g.name = src.name
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.sparse_initializer.extend(src.sparse_initializer)
    g.initializer.extend(_stub(t) if math.prod(t.dims) > _STUB_ELEMENTS else t
                         for t in src.initializer)
    return out


def _stub(t: TensorProto) -> TensorProto:
    s = TensorProto()
    s.name, s.data_type = t.name, t.data_type
    s.dims.extend(t.dims)
    return s


def _inferred(proto: onnx.ModelProto, spec: InputSpec, size, batch: int):
    """{tensor: (dims or None, itemsize)} from static inference at this input shape."""
    m = resized(proto, spec, size, batch, stub=True)
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - what inference cannot say is estimated below
        pass
    g = m.graph
    found = {}
    for vi in [*g.value_info, *g.output, *g.input]:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            continue
        try:
            item = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
        except Exception:  # noqa: BLE001
            item = 4
        dims = None
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            dims = [int(d.dim_value) for d in tt.shape.dim]
        found[vi.name] = (dims, item)
    return found


def image_bytes(proto: onnx.ModelProto, spec: InputSpec, size=None) -> int:
    """Estimated peak bytes one image holds in an ONNX Runtime run at spatial ``size`` (default
    the declared one), the input included and the weights not.

    Walks the nodes in order, keeping each tensor until its last reader (ONNX Runtime's allocation
    plan reuses a buffer after that) and adding, at each Conv, a copy of its input and its output
    padded to :data:`NCHWC_BLOCK` channels (the blocked layout its kernels run in); a ConvTranspose
    adds its column buffer. A tensor whose size inference leaves open counts as large as the input.
    Batch-free: a run of ``n`` images holds about ``n`` times this.
    """
    size = tuple(size or spec.size)
    batch = spec.batch if isinstance(spec.batch, int) and spec.batch > 0 else 1
    info = _inferred(proto, spec, size, batch)
    c = spec.channels
    per_input = c * size[0] * size[1] * spec.dtype.itemsize * batch

    def nbytes(name: str) -> int:
        dims, item = info.get(name, (None, 4))
        if dims is None:
            return per_input
        return int(math.prod(dims)) * item

    g = proto.graph
    kept = {t.name for t in g.initializer} | {o.name for o in g.output} | {
        i.name for i in g.input}  # weights, results and feeds outlive the run
    last: dict[str, int] = {}
    for k, node in enumerate(g.node):
        for i in node.input:
            last[i] = k
    live = per_input
    peak = live
    for k, node in enumerate(g.node):
        made = sum(nbytes(o) for o in node.output if o)
        work = _workspace(node, info, nbytes)
        peak = max(peak, live + made + work)
        live += made
        for i in set(node.input):
            if i and i not in kept and last.get(i) == k and i in info:
                live -= nbytes(i)
    return -(-peak // batch)


def _workspace(node, info, nbytes) -> int:
    """Extra bytes ONNX Runtime's kernel for ``node`` allocates while it runs."""
    if node.op_type == "Conv" and node.input and node.output:
        dims = info.get(node.output[0], (None, 4))[0]
        out = nbytes(node.output[0])
        if dims is not None and len(dims) >= 3 and dims[1] > 0:
            out = out // dims[1] * (-(-dims[1] // NCHWC_BLOCK) * NCHWC_BLOCK)
        return nbytes(node.input[0]) + out
    if node.op_type == "ConvTranspose" and len(node.input) > 1:
        (x, item), w = info.get(node.input[0], (None, 4)), info.get(node.input[1], (None, 4))[0]
        if x and w and len(x) >= 3 and len(w) >= 3:  # one group's columns: C_out/g * k x H_in W_in
            return w[1] * math.prod(w[2:]) * math.prod(x[2:]) * item
        return nbytes(node.input[0])
    return 0


def _same_outputs(proto, spec, small) -> bool:
    """Whether every graph output keeps its per-image shape at spatial size ``small``."""
    full = _inferred(proto, spec, spec.size, 1)
    there = _inferred(proto, spec, small, 1)
    for o in proto.graph.output:
        a, b = full.get(o.name, (None, 0))[0], there.get(o.name, (None, 0))[0]
        if a is None or b is None or a != b:
            return False
    return True


def probe_plan(proto: onnx.ModelProto, spec: InputSpec, runs=None) -> ProbePlan:
    """How the load-time runs fit the memory budget (:func:`onnxviz.limits.memory_budget`).

    Args:
        proto: the model, checked.
        spec: its image input.
        runs: ``fn(proto, size) -> bool``, whether ``proto`` runs one image at spatial ``size``;
            called only for a smaller size, before it is chosen.

    Returns:
        The :class:`ProbePlan`: the declared size at batch 2 when that fits; else the first
        halving of the size whose sides are at most :data:`PROBE_SIDE` and whose runs fit, when
        every output keeps its shape there and the model runs; else the declared size one image
        at a time.

    Raises:
        ResourceError: not even one image at the declared size fits; the message has the numbers.
    """
    budget = limits.memory_budget()
    weights = WEIGHT_COPIES * weight_bytes(proto)
    one_input = int(np.prod(spec.shape)) * spec.dtype.itemsize
    limits.check_memory(weights + one_input,
                        f"the model's weights and one input of shape {spec.shape}")
    per = image_bytes(proto, spec)
    full = weights + 2 * per
    if full <= budget:
        return ProbePlan(spec.size, 2, full)
    h, w = spec.size
    for k in range(1, 32):
        small = (max(1, -(-h // 2 ** k)), max(1, -(-w // 2 ** k)))
        if min(small) < MIN_PROBE_SIDE:
            break
        if max(small) > PROBE_SIDE:
            continue
        need = weights + 2 * image_bytes(proto, spec, small)
        if need > budget:
            continue
        if _same_outputs(proto, spec, small) and (runs is None or runs(proto, small)):
            return ProbePlan(small, 2, need, note=(
                f"checked at load on {small[0]}x{small[1]} inputs: the declared {h}x{w} ones "
                f"would need about {limits.gib(full)}, more than the memory budget of "
                f"{limits.gib(budget)}"))
        break
    one = weights + per
    limits.check_memory(one, f"running the model on one input of shape {spec.shape}")
    return ProbePlan(spec.size, 1, one, note=(
        f"images run one at a time: two {h}x{w} inputs need about {limits.gib(full)}, more than "
        f"the memory budget of {limits.gib(budget)}"))


def check_run(proto: onnx.ModelProto, spec: InputSpec, batch: int, what: str) -> None:
    """Refuse a run of ``batch`` images at the declared size that would not fit the budget."""
    limits.check_memory(WEIGHT_COPIES * weight_bytes(proto) + batch * image_bytes(proto, spec),
                        what)


# ---- loops ----------------------------------------------------------------------------------
def refuse_endless_loops(proto: onnx.ModelProto) -> None:
    """Refuse a graph with a ``Loop`` that its constants make run longer than the probe limit.

    A Loop runs at least its trip count ``M`` times when nothing can end it early: its first
    condition is absent or a constant true, and its body passes the condition through unchanged
    (the body's condition output is its condition input, an Identity of it, or a constant true).
    With ``M`` absent it never ends. Loops whose condition the body computes (tf2onnx's while
    loops, with ``M`` = 2^63 - 1) are left to the time limit.

    Raises:
        ModelError: naming the node, its iteration count and the limit.
    """
    most = limits.PROBE_SECONDS / LOOP_SECONDS
    for graph in _graphs(proto.graph):
        consts = _constants(graph, proto.graph)
        for node in graph.node:
            if node.op_type != "Loop":
                continue
            count = _least_iterations(node, consts)
            if count is not None and count > most:
                name = node.name or (node.output[0] if node.output else "?")
                told = "never ends" if math.isinf(count) else f"runs {int(count):,} iterations"
                raise ModelError(
                    f"Loop node {name!r} {told} (its trip count and condition are constants); "
                    f"loading runs the model, which would take more than the probe limit of "
                    f"{limits.PROBE_SECONDS:g} s (ONNXVIZ_PROBE_TIMEOUT) even at "
                    f"{LOOP_SECONDS * 1e6:g} us an iteration")


def _graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _graphs(sub)


def _constants(graph: onnx.GraphProto, main: onnx.GraphProto) -> dict:
    """Small constant tensors visible in ``graph``: initializers and Constant nodes (its own and the
    main graph's), by name."""
    found = {}
    for g in (main, graph) if graph is not main else (main,):
        for t in g.initializer:
            if math.prod(t.dims) <= 16:
                found[t.name] = t
        for n in g.node:
            if n.op_type == "Constant" and n.output:
                for a in n.attribute:
                    if a.name == "value" and a.HasField("t") and math.prod(a.t.dims) <= 16:
                        found[n.output[0]] = a.t
    return found


def _value(name: str, consts: dict):
    t = consts.get(name)
    if t is None:
        return None
    try:
        return numpy_helper.to_array(t).reshape(-1)
    except Exception:  # noqa: BLE001
        return None


def _least_iterations(node, consts: dict) -> float | None:
    """The iterations a Loop must run, when its constants say (``inf`` for never ending)."""
    m = node.input[0] if len(node.input) > 0 else ""
    cond = node.input[1] if len(node.input) > 1 else ""
    if cond:
        v = _value(cond, consts)
        if v is None or v.size != 1 or not bool(v[0]):
            return None
    body = next((a.g for a in node.attribute if a.name == "body"), None)
    if body is None or len(body.input) < 2 or not body.output:
        return None
    if not _stays_true(body, body.input[1].name, body.output[0].name):
        return None
    if not m:
        return math.inf
    v = _value(m, consts)
    if v is None or v.size != 1:
        return None
    return float(v[0])


def _stays_true(body: onnx.GraphProto, cond_in: str, cond_out: str) -> bool:
    """Whether the body's condition output is its input passed through, or a constant true."""
    if cond_out == cond_in:
        return True
    made = {o: n for n in body.node for o in n.output}
    node = made.get(cond_out)
    if node is None:
        v = _value(cond_out, _constants(body, body))
        return v is not None and v.size == 1 and bool(v[0])
    if node.op_type == "Identity" and node.input and node.input[0] == cond_in:
        return True
    if node.op_type == "Constant":
        v = _value(cond_out, _constants(body, body))
        return v is not None and v.size == 1 and bool(v[0])
    return False
