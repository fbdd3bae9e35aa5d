"""Graph analysis for the reverse walk: shapes, constants, and which nodes lie between wrt and of.

Only tensors that are both reachable from a ``wrt`` tensor through differentiable edges and upstream
of ``of`` are differentiated. Everything else — shape arithmetic (Shape, Gather on shapes,
ConstantOfShape, Range, Cast of integer tensors …), weights, masks — is a constant of the backward
graph.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .registry import NON_DIFFERENTIABLE, QUANTIZERS, find_rule

FLOAT_TYPES = frozenset(
    {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain (``ai.onnx``) opset version."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def _dims(tp: onnx.TypeProto) -> list | None:
    if not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tp.tensor_type.shape.dim]


def _graph_index(g, keep):
    """``(constants by tensor, consumers by tensor, names to keep)`` of graph ``g``: the
    initializers and Constant nodes' values, each tensor's consuming nodes, and ``keep`` plus
    the graph outputs (what the rewrites of this module leave alone)."""
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            v = _constant_node_value(n)
            if v is not None:
                consts[n.output[0]] = v
    users = defaultdict(list)
    for n in g.node:
        for i in n.input:
            users[i].append(n)
    return consts, users, set(keep) | {o.name for o in g.output}


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int"):
            return np.asarray(helper.get_attribute_value(a))
        if a.name in ("value_floats", "value_ints"):
            return np.asarray(list(helper.get_attribute_value(a)))
    return None


def toposort(nodes: list) -> list:
    """Nodes in an order where every producer precedes its consumers (stable when sorted)."""
    produced = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    deps = defaultdict(set)
    users = defaultdict(list)
    for i, n in enumerate(nodes):
        for inp in n.input:
            j = produced.get(inp)
            if j is not None and j != i and j not in deps[i]:
                deps[i].add(j)
                users[j].append(i)
    ready = [i for i in range(len(nodes)) if not deps[i]]
    ready.reverse()
    order = []
    remaining = {i: len(deps[i]) for i in range(len(nodes))}
    while ready:
        i = ready.pop()
        order.append(i)
        for u in users[i]:
            remaining[u] -= 1
            if remaining[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):  # a cycle: keep the file's order
        return list(nodes)
    if order == sorted(order):
        return list(nodes)
    return [nodes[i] for i in order]


@dataclass
class GraphInfo:
    """Static facts about a model's main graph."""

    model: onnx.ModelProto
    opset: int
    nodes: list
    shapes: dict = field(default_factory=dict)
    types: dict = field(default_factory=dict)
    consts: dict = field(default_factory=dict)
    value_infos: dict = field(default_factory=dict)
    quantized: set = field(default_factory=set)  # integer outputs of quantizers (see is_float)

    @classmethod
    def of(cls, model: onnx.ModelProto, facts=None) -> GraphInfo:
        """Analyze ``model`` (its nodes are used in place, not copied).

        ``facts`` (an :class:`onnxviz.model.shapes.ShapeFacts`, or anything with ``shapes`` and
        ``consts`` dicts) completes static inference: its sizes replace inferred ones and its
        integer values become constants.
        """
        g = model.graph
        info = cls(model=model, opset=default_opset(model), nodes=toposort(list(g.node)))
        info.quantized = {n.output[0] for n in g.node if n.op_type in QUANTIZERS}
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
        except Exception:  # noqa: BLE001 - partial information is still useful
            inferred = g
        for vi in [*inferred.input, *inferred.value_info, *inferred.output, *g.input, *g.output]:
            if vi.name not in info.value_infos or _dims(info.value_infos[vi.name].type) is None:
                info.value_infos[vi.name] = vi
        for name, vi in info.value_infos.items():
            dims = _dims(vi.type)
            if dims is not None:
                info.shapes[name] = dims
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                info.types[name] = vi.type.tensor_type.elem_type
        for init in g.initializer:
            info.consts[init.name] = numpy_helper.to_array(init)
            info.shapes[init.name] = list(init.dims)
            info.types[init.name] = init.data_type
        for n in g.node:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                v = _constant_node_value(n)
                if v is not None:
                    info.consts[n.output[0]] = v
                    info.shapes[n.output[0]] = list(v.shape)
        if facts is not None:
            produced = {o for n in info.nodes for o in n.output if o}
            for name, dims in facts.shapes.items():
                if name in produced:
                    info.shapes[name] = list(dims)
            for name, v in facts.consts.items():
                if name in produced and name not in info.consts:
                    info.consts[name] = np.asarray(v)
                    info.types.setdefault(name, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype))
        return info

    def tensor_names(self) -> set[str]:
        """Every tensor name of the main graph."""
        names = {i.name for i in self.model.graph.input} | set(self.consts)
        for n in self.nodes:
            names.update(o for o in n.output if o)
        return names

    def is_float(self, name: str) -> bool:
        """True when ``name`` is (or may be, when its type is unknown) a floating-point tensor, or
        a quantizer's integer output (a real value in integer units: STE, ``rules/quant.py``)."""
        t = self.types.get(name)
        return t is None or t in FLOAT_TYPES or name in self.quantized

    def diff_slots(self, node: onnx.NodeProto) -> list[int]:
        """Input slots of ``node`` that can carry a gradient."""
        if node.op_type in NON_DIFFERENTIABLE:
            return []
        if node.domain not in ("", "ai.onnx"):
            return list(range(len(node.input)))
        r = find_rule(node.op_type, self.opset)
        skip = set(r.nondiff) if r else set()
        return [i for i in range(len(node.input)) if i not in skip and node.input[i]]

    def forward_reach(self, wrt) -> set[str]:
        """Tensors that depend differentiably on any tensor in ``wrt``."""
        reach = set(wrt)
        for n in self.nodes:
            if n.op_type in NON_DIFFERENTIABLE:
                continue
            if any(n.input[i] in reach for i in self.diff_slots(n)):
                reach.update(o for o in n.output if o and self.is_float(o))
        return reach

    def ancestors(self, of: str) -> set[str]:
        """``of`` and every tensor it is computed from."""
        up = {of}
        for n in reversed(self.nodes):
            if any(o in up for o in n.output):
                up.update(i for i in n.input if i)
        return up

    def active(self, of: str, wrt) -> set[str]:
        """Tensors on a differentiable path from some ``wrt`` tensor to ``of``."""
        return self.forward_reach(wrt) & self.ancestors(of)


def fold_pads(model: onnx.ModelProto, keep) -> int:
    """Fold zero ``Pad`` nodes into the ``Conv`` that alone consumes them (in place).

    TensorFlow-style "same" padding is exported as Pad + Conv. ONNX Runtime fuses the pair in
    the forward pass; folding it here also lets the backward graph handle the padding inside
    the Conv's input gradient instead of slicing every padded gradient. Pads whose output is in
    ``keep`` (asked for, or a graph output) are left alone. Returns the number folded.
    """
    g = model.graph
    opset = default_opset(model)
    consts, users, keep = _graph_index(g, keep)
    folded = []
    for n in g.node:
        if n.op_type != "Pad" or n.domain not in ("", "ai.onnx") or n.output[0] in keep:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if attrs.get("mode", b"constant") not in (b"constant", "constant"):
            continue
        if opset < 11:
            pads, value = attrs.get("pads", attrs.get("paddings")), attrs.get("value", 0.0)
        else:
            pads = consts.get(n.input[1]) if len(n.input) > 1 else None
            value = consts.get(n.input[2], np.zeros(1)) if len(n.input) > 2 and n.input[2] else 0.0
            if len(n.input) > 3 and n.input[3]:
                continue
        if pads is None or np.any(np.asarray(value) != 0):
            continue
        pads = [int(p) for p in np.ravel(pads)]
        rank = len(pads) // 2
        cons = users[n.output[0]]
        if (rank < 3 or min(pads) < 0 or any(pads[a] or pads[rank + a] for a in (0, 1))
                or len(cons) != 1 or cons[0].op_type != "Conv" or cons[0].input[0] != n.output[0]):
            continue
        conv = cons[0]
        cattrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if cattrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"", ""):
            continue
        nd = rank - 2
        old = list(cattrs.get("pads", [0] * (2 * nd)))
        new = [old[i] + pads[2 + i] for i in range(nd)] + [old[nd + i] + pads[rank + 2 + i] for i in range(nd)]
        for a in list(conv.attribute):
            if a.name == "pads":
                conv.attribute.remove(a)
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = n.input[0]
        folded.append(n)
    for n in folded:
        g.node.remove(n)
    _prune(g, {i for n in folded for i in n.input[1:] if i} - keep)
    return len(folded)


def _prune(g: onnx.GraphProto, dead: set):
    """Remove the nodes and initializers that only computed the (now unused) tensors ``dead``."""
    while dead:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = {t for t in dead if t not in used}
        nxt = set()
        for n in list(g.node):
            if n.output and all(o in dead or not o for o in n.output):
                g.node.remove(n)
                nxt.update(i for i in n.input if i)
        for t in list(g.initializer):
            if t.name in dead:
                g.initializer.remove(t)
        dead = nxt


def reachable(model: onnx.ModelProto, of: str) -> dict[str, bool]:
    """Which tensors gradients of ``of`` can reach.

    Args:
        model: the ONNX model.
        of: the differentiated tensor (usually the logits).

    Returns:
        ``{tensor: ok}`` for every float tensor upstream of ``of`` through differentiable edges:
        ``True`` when :func:`~onnxviz.autodiff.gradient_model` can differentiate ``of`` with
        respect to it, ``False`` when some op between the two has no gradient rule. Tensors
        missing from the dict do not influence ``of`` differentiably (their gradient is zero).
    """
    from . import rules  # noqa: F401  (registers the rules)

    info = GraphInfo.of(model)
    flows: dict[str, bool] = {of: True}
    for n in reversed(info.nodes):
        outs = [flows[o] for o in n.output if o in flows]
        if not outs or n.op_type in NON_DIFFERENTIABLE:
            continue
        ok = all(outs) and find_rule(n.op_type, info.opset, n.domain) is not None
        for i in info.diff_slots(n):
            name = n.input[i]
            if info.is_float(name):
                flows[name] = flows.get(name, True) and ok
    return flows


def _scalar(consts: dict, name: str) -> float | None:
    v = consts.get(name)
    if v is None or np.size(v) != 1:
        return None
    return float(np.ravel(v)[0])


def fuse_gelu(model: onnx.ModelProto, keep, *, contrib: bool) -> int:
    """Replace exact-GELU chains ``0.5 * x * (1 + erf(x / sqrt(2)))`` by one ``Gelu`` node (in place).

    The chain is what the exporters write for ``torch.nn.GELU()``. ONNX Runtime fuses it into one
    kernel in the plain forward, but not in the gradient graph, where the backward would read its
    intermediates. As one node, the forward part runs ONNX Runtime's fused kernel and the backward
    reads only ``x`` (``rules/activations.py``). The node is ``Gelu`` from opset 20, else the
    ``com.microsoft`` contrib op when ``contrib`` (ONNX Runtime builds only); with neither, nothing is
    fused. Chains whose intermediates are in ``keep`` or used elsewhere are left alone. Returns the
    number fused.
    """
    g = model.graph
    opset = default_opset(model)
    if opset < 20 and not contrib:
        return 0
    consts, users, keep = _graph_index(g, keep)

    def only_user(t, op):
        us = users[t]
        if len(us) != 1 or t in keep or us[0].op_type != op or us[0].domain not in ("", "ai.onnx"):
            return None
        return us[0]

    def other(node, t):
        return node.input[1] if node.input[0] == t else node.input[0]

    fused, dead = [], set()
    for n in list(g.node):
        if n.op_type != "Erf" or n.domain not in ("", "ai.onnx"):
            continue
        scale = next((p for p in g.node if n.input[0] in p.output), None)
        if (scale is None or scale.op_type not in ("Div", "Mul") or n.input[0] in keep
                or len(users[n.input[0]]) != 1):
            continue
        x, c = scale.input[0], _scalar(consts, scale.input[1])
        if c is None or not np.isclose(c if scale.op_type == "Div" else 1 / c, np.sqrt(2), rtol=1e-6):
            continue
        add = only_user(n.output[0], "Add")
        if add is None or _scalar(consts, other(add, n.output[0])) != 1.0:
            continue
        m1 = only_user(add.output[0], "Mul")
        if m1 is None:
            continue
        a = other(m1, add.output[0])
        if a == x:  # x * (1 + erf) then * 0.5
            m2 = only_user(m1.output[0], "Mul")
            ok = m2 is not None and _scalar(consts, other(m2, m1.output[0])) == 0.5
            chain = [scale, n, add, m1, m2]
        elif _scalar(consts, a) == 0.5:  # (1 + erf) * 0.5 then * x
            m2 = only_user(m1.output[0], "Mul")
            ok = m2 is not None and other(m2, m1.output[0]) == x
            chain = [scale, n, add, m1, m2]
        else:  # (x * 0.5) * (1 + erf)
            half = next((p for p in g.node if a in p.output), None)
            ok = (half is not None and half.op_type == "Mul" and len(users[a]) == 1 and a not in keep
                  and x in half.input and _scalar(consts, other(half, x)) == 0.5)
            chain = [scale, n, add, half, m1]
            m2 = m1
        if not ok:
            continue
        domain = "" if opset >= 20 else "com.microsoft"
        node = helper.make_node("Gelu", [x], [m2.output[0]], name=(m2.name or m2.output[0]) + "/gelu",
                                domain=domain)
        g.node.insert(list(g.node).index(m2), node)
        fused.append(node)
        for c_node in chain:
            g.node.remove(c_node)
            dead.update(i for i in c_node.input if i and i != x)
    if fused and opset < 20 and not any(i.domain == "com.microsoft" for i in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    _prune(g, dead - keep)
    return len(fused)
