"""The ONNX graphs a :class:`~.plan.Plan` runs: one static-shape crop graph per segment of the
prefix, and the suffix graph that reads the frontier tensors whole; the graph's constants and
the rewrite that folds zero Pads into Convs before planning.

A crop graph copies the prefix nodes with their weights; window ops lose their padding (their
gathered inputs arrive padded with the right value, so they run "valid" and every output is
exact, at the border too) and a Pad becomes an Identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .rules import Context, Unsupported, pad_of

if TYPE_CHECKING:
    from .plan import Plan

_WINDOW_ATTRS = ("pads", "auto_pad", "ceil_mode")


class Constants:
    """The graph's constant tensors: initializers, Constant node outputs and Identity copies of
    them (the TorchScript exporter shares equal weights that way). Shapes come from the protos;
    values are converted on first use (a VGG's 500 MB of weights are never copied to plan it)."""

    def __init__(self, proto):
        self.protos = {t.name: t for t in proto.graph.initializer}
        for node in proto.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.protos[node.output[0]] = node.attribute[0].t
            elif node.op_type == "Identity" and node.input[0] in self.protos:
                self.protos[node.output[0]] = self.protos[node.input[0]]
        self._values: dict = {}

    def __contains__(self, name) -> bool:
        return name in self.protos

    def shape(self, name: str) -> tuple:
        return tuple(int(d) for d in self.protos[name].dims)

    def value(self, name: str) -> np.ndarray:
        if name not in self._values:
            self._values[name] = numpy_helper.to_array(self.protos[name])
        return self._values[name]

    def tensor(self, name: str):
        """The constant as a TensorProto named ``name``."""
        t = self.protos[name]
        if t.name == name:
            return t
        out = type(t)()
        out.CopyFrom(t)
        out.name = name
        return out


def constants(proto) -> Constants:
    """The :class:`Constants` of ``proto``."""
    return Constants(proto)


def node_inputs(node) -> list[str]:
    """The tensors a node reads, those its subgraphs read from the outer graph included."""
    names = [t for t in node.input if t]
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            inner = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {
                t.name for t in g.initializer}
            names += [t for n in g.node for t in node_inputs(n) if t not in inner]
    return list(dict.fromkeys(names))


def gathered(tensor: str, step_index: int, j: int) -> str:
    """The name of a gathered read in a crop graph."""
    return f"{tensor}#read{step_index}_{j}"


def _model(proto, nodes, inputs, outputs, initializers, name) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    m = helper.make_model(graph, opset_imports=list(proto.opset_import))
    m.ir_version = proto.ir_version
    return m


def _value(name: str, dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def _dims(window, size) -> list:
    dims = ["N", *window.shape[1:]]
    dims[window.spatial[0]], dims[window.spatial[1]] = size
    return dims


def segment_models(proto, plan: Plan, consts) -> list[tuple[onnx.ModelProto, list, list]]:
    """One crop graph per segment: ``(model, inputs, outputs)`` where inputs are
    ``(name, tensor, read or None, the reading node's output)`` (None: a direct crop) and outputs
    tensor names."""
    nodes = list(proto.graph.node)
    later: list[set] = []
    for k in range(len(plan.segments)):
        used = set(plan.frontier)
        for seg in plan.segments[k + 1:]:
            used.update(r.tensor for s in seg for r in s.reads.values())
        later.append(used)
    out = []
    for k, seg in enumerate(plan.segments):
        made = {nodes[s.index].output[0] for s in seg}
        inputs, feeds, inits, new_nodes = [], {}, {}, []
        for s in seg:
            node = nodes[s.index]
            names = list(node.input)
            for j, t in enumerate(node.input):
                r = s.reads.get(j)
                if r is None:
                    if t and t in consts and t not in inits:
                        inits[t] = consts.tensor(t)
                    continue
                if r.direct:
                    if t not in made and t not in feeds:
                        feeds[t] = (t, t, None, node.output[0])
                        inputs.append(_value(t, _dims(plan.windows[t], r.size)))
                    continue
                name = gathered(t, s.index, j)
                names[j] = name
                feeds[name] = (name, t, r, node.output[0])
                inputs.append(_value(name, _dims(plan.windows[t], r.size)))
            new_nodes.append(_crop_node(node, names))
        outputs = [nodes[s.index].output[0] for s in seg
                   if nodes[s.index].output[0] in later[k]]
        values = [_value(t, _dims(plan.windows[t], plan.windows[t].size)) for t in outputs]
        m = _model(proto, new_nodes, inputs, values, list(inits.values()), f"crop{k}")
        out.append((m, list(feeds.values()), outputs))
    return out


def _crop_node(node, names) -> onnx.NodeProto:
    if node.op_type == "Pad":
        return helper.make_node("Identity", [names[0]], list(node.output), name=node.name)
    new = onnx.NodeProto()
    new.CopyFrom(node)
    del new.input[:]
    new.input.extend(names)
    if node.op_type in ("Conv", "MaxPool", "AveragePool"):
        keep = [a for a in new.attribute if a.name not in _WINDOW_ATTRS]
        del new.attribute[:]
        new.attribute.extend(keep)
    return new


def suffix_model(proto, plan: Plan, score_output: str) -> onnx.ModelProto:
    """The graph from the frontier tensors (whole, batch first) to ``score_output``; the
    ``Shape`` of a tensor in ``plan.sized`` is the batch size of the first frontier tensor and
    the rest of its known shape."""
    nodes = []
    for i in plan.suffix:
        node = proto.graph.node[i]
        nodes.extend(_shape_of(node, plan) if node.op_type == "Shape" and node.input[0] in
                     plan.sized else [node])
    reads = {t for n in nodes for t in node_inputs(n)}
    inits = [t for t in proto.graph.initializer if t.name in reads]
    inputs = [_value(t, ["N", *plan.windows[t].shape[1:]]) for t in plan.frontier]
    output = helper.make_tensor_value_info(score_output, TensorProto.FLOAT, None)
    return _model(proto, nodes, inputs, [output], inits, "suffix")


def _shape_of(node, plan: Plan) -> list:
    """Nodes computing ``Shape(node.input[0])`` (a tensor of ``plan.sized``) from the first
    frontier tensor's batch size, with the ``start``/``end`` of opset 15's Shape."""
    out, name = node.output[0], node.name or node.output[0]
    dims = plan.sized[node.input[0]][1:]
    attrs = {a.name: a.i for a in node.attribute}

    def const(suffix, values):
        return helper.make_node("Constant", [], [f"{out}#{suffix}"], name=f"{name}#{suffix}",
                                value=helper.make_tensor(f"{out}#{suffix}", TensorProto.INT64,
                                                         [len(values)], list(values)))
    made = [const("zero", [0]), const("one", [1]), const("dims", dims),
            helper.make_node("Shape", [plan.frontier[0]], [f"{out}#shape"], name=f"{name}#shape"),
            helper.make_node("Slice", [f"{out}#shape", f"{out}#zero", f"{out}#one"],
                             [f"{out}#batch"], name=f"{name}#batch")]
    if "start" not in attrs and "end" not in attrs:
        return made + [helper.make_node("Concat", [f"{out}#batch", f"{out}#dims"], [out],
                                        name=name, axis=0)]
    rank = len(dims) + 1
    return made + [
        helper.make_node("Concat", [f"{out}#batch", f"{out}#dims"], [f"{out}#full"],
                         name=f"{name}#full", axis=0),
        const("start", [attrs.get("start", 0)]), const("end", [attrs.get("end", rank)]),
        helper.make_node("Slice", [f"{out}#full", f"{out}#start", f"{out}#end"], [out],
                         name=name)]


def fold_pads(proto, consts) -> onnx.ModelProto:
    """``proto`` with each zero-valued constant Pad of the spatial axes that only Convs read folded
    into those Convs' own ``pads`` (the same function; a copy, or ``proto`` itself when nothing
    folds). TensorFlow and EfficientNet-PyTorch exports pad that way ("same" padding), and in a
    plan each Pad would be a window op of its own: one more gathered crop per convolution."""
    nodes = list(proto.graph.node)
    readers: dict = {}
    for i, n in enumerate(nodes):
        for t in node_inputs(n):
            readers.setdefault(t, []).append(i)
    outputs = {o.name for o in proto.graph.output}
    fold = {}  # Pad index -> (input, pads (top, left, bottom, right))
    for i, n in enumerate(nodes):
        if n.op_type != "Pad" or n.output[0] in outputs:
            continue
        pads = _pad_amounts(n, consts)
        users = [nodes[j] for j in readers.get(n.output[0], [])]
        if pads is None or not users or not all(_reads_as_image(u, n.output[0]) for u in users):
            continue
        fold[i] = pads
    if not fold:
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    new = out.graph.node
    source = {nodes[i].output[0]: (nodes[i].input[0], p) for i, p in fold.items()}
    for n in new:
        if n.op_type == "Conv" and n.input[0] in source:
            src, (t, lft, b, r) = source[n.input[0]]
            attr = next((a for a in n.attribute if a.name == "pads"), None)
            old = list(attr.ints) if attr is not None else [0, 0, 0, 0]
            merged = [old[0] + t, old[1] + lft, old[2] + b, old[3] + r]
            if attr is None:
                n.attribute.append(helper.make_attribute("pads", merged))
            else:
                del attr.ints[:]
                attr.ints.extend(merged)
            n.input[0] = src
    for i in sorted(fold, reverse=True):
        del new[i]
    return out


def _reads_as_image(node, tensor: str) -> bool:
    """``node`` is a Conv with explicit padding that reads ``tensor`` as its image only."""
    auto = next((a.s for a in node.attribute if a.name == "auto_pad"), b"NOTSET")
    return (node.op_type == "Conv" and node.input[0] == tensor
            and list(node.input).count(tensor) == 1 and auto in (b"NOTSET", b""))


def _pad_amounts(node, consts):
    """A 4-D constant Pad's (top, left, bottom, right) when it pads only axes 2 and 3 with zeros
    (a Conv's own padding); None otherwise."""
    try:
        pads, value = pad_of(node, Context({}, consts, {}))
    except Unsupported:
        return None
    if len(pads) != 8 or min(pads) < 0 or any(pads[k] for k in (0, 1, 4, 5)) or value != 0.0:
        return None
    return pads[2], pads[3], pads[6], pads[7]
