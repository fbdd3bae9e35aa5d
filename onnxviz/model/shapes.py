"""Static sizes for every tensor of an image model, read from the model itself.

An image model has a fixed input size, so every size in it except those that follow the batch is
knowable. ONNX's static shape inference often does not know them: the TorchScript exporter computes
the class-token Concat, Swin's window partition or a ``ceil_mode`` pooling's output from ``Shape``
nodes, and inference gives up on the arithmetic. Gradient rules need those sizes (where to split a
Concat's gradient, how many elements a ReduceMean averaged, which constant starts a Slice had).

:func:`shape_facts` completes what static inference left open with a *probe*: the tensors whose
sizes are unknown, and the integer tensors computed at run time (shape arithmetic), are added as
outputs of a copy of the model, which runs on random inputs at two batch sizes. A size that is the
same in both runs is static; one that differs follows the batch and stays symbolic. An integer
tensor with the same value in both runs is a constant of the gradient graph. Only incomplete tensors
are probed, so the extra cost is one or two small runs, paid once per model.

Why a probe rather than specialising the graph (fixing the input shape and folding the shape
arithmetic): the probe keeps the gradient graph batch-agnostic (one graph, any batch) and needs no
symbolic evaluator for each op, measured on the timm zoo where shape inference of a specialised
graph still left Swin's and MaxViT's window partitions open (``data_prop`` stops at Reshape/Range).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import ModelError, OnnxvizError

#: Integer tensors larger than this are not folded into constants (masks, index maps).
MAX_CONST_ELEMENTS = 1 << 16

#: Most bytes of probed tensors one probe run may hold (larger sets run in several passes).
PROBE_BYTES = 256 << 20

#: Batch sizes of the two probe runs (1 is avoided: exporters special-case it).
PROBE_BATCHES = (2, 3)

_FLOATS = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


@dataclass
class ShapeFacts:
    """What the probe learned: sizes (``None`` for batch-dependent dims) and folded constants.

    Attributes:
        shapes: tensor name -> list of dims (int, or ``None`` where the size follows the batch).
        consts: integer tensor name -> its batch-independent value.
        probed: how many tensors the probe run read (0 when static inference was complete).
        symbols: tensor name -> dims with the batch-dependent ones named: ``"N"`` for the batch
            itself, ``"k*N"`` for a multiple of it (Swin's ``windows x batch``), ``"?"`` else.
    """

    shapes: dict = field(default_factory=dict)
    consts: dict = field(default_factory=dict)
    probed: int = 0
    symbols: dict = field(default_factory=dict)


def _dim_info(vi: onnx.ValueInfoProto):
    """(dims, params) of a value info: dims are int or None; params are the dim_param strings."""
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None, None
    dims, params = [], []
    for d in tt.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else None)
        params.append(d.dim_param if d.HasField("dim_param") else "")
    return dims, params


def _needs_probe(dims, params, batch_param: str) -> bool:
    """True when a tensor's static shape leaves a size open that does not follow the batch."""
    if dims is None:
        return True
    for d, p in zip(dims, params):
        if d is None and not (batch_param and p and _mentions(p, batch_param)):
            return True
    return False


def _mentions(param: str, symbol: str) -> bool:
    """Whether a dim_param (a name, or an exporter's expression such as ``2*s0``) uses ``symbol``."""
    return re.search(rf"(?<![\w.]){re.escape(symbol)}(?![\w.])", param) is not None


def _disputed(info) -> set:
    """Tensors whose statically inferred sizes may be wrong, not just open: everything downstream
    of a pooling with ``ceil_mode=1``. ONNX's shape inference lets the last window start in the
    padding where ONNX Runtime (like PyTorch) drops it, so inference can say 9 where a run gives 8
    (seen on a TorchScript ``AvgPool2d(2, 2, padding=1, ceil_mode=True)`` at 15 px)."""
    bad: set = set()
    for n in info.nodes:
        ceil = n.op_type in ("AveragePool", "MaxPool", "LpPool") and any(
            a.name == "ceil_mode" and a.i for a in n.attribute)
        if ceil or any(i in bad for i in n.input):
            bad.update(o for o in n.output if o)
    return bad


def shape_facts(proto: onnx.ModelProto, input_name: str, sample_shape, dtype=np.float32,
                fixed_batch: bool = False, providers=None) -> ShapeFacts:
    """Complete the static shapes of ``proto`` with a probe run where inference left them open.

    Args:
        proto: the (normalized) model.
        input_name: its image input.
        sample_shape: the per-image input shape in model layout (without the batch axis).
        dtype: the input's numpy dtype.
        fixed_batch: the graph only runs batch 1 (then all sizes are static at batch 1).
        providers: ONNX Runtime providers for the probe (default: CPU).

    Returns:
        The :class:`ShapeFacts`; empty dicts when static inference already knew everything.

    Raises:
        ResourceError: the probe runs would not fit the memory budget (sized before they run,
            :func:`onnxviz.model.budget.check_run`).
    """
    from ..autodiff.graph import GraphInfo

    info = GraphInfo.of(proto)
    inputs = {i.name: i for i in proto.graph.input}
    if input_name not in inputs:
        raise ModelError(f"no graph input named {input_name!r}")
    _, in_params = _dim_info(inputs[input_name])
    batch_param = (in_params or [""])[0]
    inferred = {}
    try:
        g = onnx.shape_inference.infer_shapes(proto, data_prop=True).graph
        for vi in [*g.value_info, *g.output, *g.input]:
            inferred[vi.name] = vi
    except Exception:  # noqa: BLE001 - the probe covers what inference cannot
        pass
    disputed = _disputed(info)

    wanted, sizes = [], []
    per_image = int(np.prod(sample_shape, dtype=np.int64))
    for n in info.nodes:
        for o in n.output:
            if not o or o in info.consts:
                continue
            t = info.types.get(o)
            vi = inferred.get(o)
            dims, params = _dim_info(vi) if vi is not None else (None, None)
            known = None if dims is None else _size([d or 1 for d in dims])
            if t is not None and t not in _FLOATS:
                if dims is None or _size(dims) is None or _size(dims) <= MAX_CONST_ELEMENTS:
                    wanted.append(o)
                    sizes.append(known or 1)
            elif o in disputed or _needs_probe(dims, params, batch_param):
                wanted.append(o)
                # an open size is budgeted as large as the input image
                sizes.append(known if dims is not None and None not in dims else max(
                    known or 1, per_image))
    if not wanted:
        return ShapeFacts()
    batches = (1,) if fixed_batch else PROBE_BATCHES
    from .budget import check_run
    from .inputs import find_input

    check_run(proto, find_input(proto, input_name), max(batches),
              f"the shape probe ({max(batches)} inputs of shape {tuple(sample_shape)})")
    runs: list[list] = [[] for _ in batches]
    for chunk in _chunks(wanted, sizes, max(batches), np.dtype(dtype).itemsize):
        for r, b in zip(runs, batches):
            r.extend(_probe_run(proto, input_name, sample_shape, dtype, b, chunk, providers))
    facts = ShapeFacts(probed=len(wanted))
    for k, name in enumerate(wanted):
        vals = [r[k] for r in runs]
        if any(v is None for v in vals):
            continue
        shapes = [v.shape for v in vals]
        if len({len(s) for s in shapes}) != 1:
            continue
        facts.shapes[name] = [int(d) if all(s[a] == d for s in shapes) else None
                              for a, d in enumerate(shapes[0])]
        facts.symbols[name] = [d if d is not None else _batch_symbol(
            [s[a] for s in shapes], batches) for a, d in enumerate(facts.shapes[name])]
        v0 = vals[0]
        if (v0.dtype.kind in "iub" and v0.size <= MAX_CONST_ELEMENTS
                and all(v.shape == v0.shape and np.array_equal(v, v0) for v in vals[1:])):
            facts.consts[name] = v0
    return facts


def _batch_symbol(sizes, batches) -> str:
    """``"N"`` when a size equals the batch in every probe run, ``"k*N"`` when it is k times it."""
    k = sizes[0] // batches[0]
    if all(s == k * b for s, b in zip(sizes, batches)):
        return "N" if k == 1 else f"{k}*N"
    return "?"


def _chunks(names, sizes, batch, itemsize):
    """Split the probed tensors so that one probe run holds at most :data:`PROBE_BYTES`."""
    chunk, total = [], 0
    for name, size in zip(names, sizes):
        nbytes = int(size) * batch * max(itemsize, 4)
        if chunk and total + nbytes > PROBE_BYTES:
            yield chunk
            chunk, total = [], 0
        chunk.append(name)
        total += nbytes
    if chunk:
        yield chunk


def _size(dims) -> int | None:
    if any(d is None for d in dims):
        return None
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _probe_run(proto, input_name, sample_shape, dtype, batch, wanted, providers):
    """Run ``proto`` at ``batch`` and return the values of ``wanted`` (None where unreadable)."""
    from .. import limits, runtime

    probe = copy.deepcopy(proto)
    g = probe.graph
    have = {o.name for o in g.output}
    for name in wanted:
        if name not in have:
            g.output.append(helper.ValueInfoProto(name=name))
    rng = np.random.default_rng(batch)  # values differ between runs: value-dependent ints differ
    x = rng.standard_normal((batch, *sample_shape)).astype(dtype)
    feeds = {input_name: x}
    try:
        sess = runtime.session(probe, providers=providers or ["CPUExecutionProvider"],
                               cache=False, arena=False)
        outs = limits.run_limited(sess, wanted, feeds, what=f"the shape probe at batch {batch}")
    except OnnxvizError:
        raise
    except Exception as e:  # noqa: BLE001 - report what the runtime said
        raise ModelError(f"could not probe the model's tensor shapes at batch {batch}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
    return [np.asarray(o) if isinstance(o, np.ndarray) else None for o in outs]
