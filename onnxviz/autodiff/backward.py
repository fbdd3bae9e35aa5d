"""The reverse walk: rewrite a model so that it also outputs gradients.

For a seed ``s`` shaped like ``of``, the rewritten model outputs ``d(sum(s * of)) / d(w)`` for every
``w`` in ``wrt`` (a vector-Jacobian product, Griewank & Walther, *Evaluating Derivatives*, ch. 3).
Nodes are visited in reverse topological order; the gradient contributions reaching a tensor from
its consumers are added with one ``Sum`` node.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import onnx
from onnx import TensorProto, helper

from ..errors import LayerError, UnsupportedOpError
from .graph import GraphInfo, fold_pads, fuse_gelu
from .registry import Context, find_rule, supported_ops


@dataclass
class GradientModel:
    """A rewritten model and the names of its extra inputs and outputs.

    Attributes:
        model: original outputs + one gradient output per ``wrt`` + exposed tensors.
        seed: name of the added input (same shape as ``of``).
        grads: ``{wrt tensor: gradient output name}``.
        exposed: ``{tensor: output name}`` for the tensors asked for in ``expose``.
        of: the differentiated tensor.
        references: ``{wrt tensor: added input}`` for the reference value of each ``wrt`` when
            the rule set runs a reference pass (DeepLIFT's); empty otherwise.
    """

    model: onnx.ModelProto
    seed: str
    grads: dict
    exposed: dict
    of: str = ""
    references: dict = field(default_factory=dict)


def _unique(base: str, taken: set) -> str:
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def _value_info(info: GraphInfo, tensor: str, name: str, dtype: int) -> onnx.ValueInfoProto:
    vi = info.value_infos.get(tensor)
    if vi is not None and vi.type.HasField("tensor_type"):
        out = copy.deepcopy(vi)
        out.name = name
        out.ClearField("doc_string")
        return out
    shape = info.shapes.get(tensor)
    return helper.make_tensor_value_info(name, info.types.get(tensor, dtype), shape)


class _Walk:
    """State of one reverse walk."""

    def __init__(self, info: GraphInfo, ctx: Context, active: set, reach: set,
                 overrides: dict | None = None):
        self.info, self.ctx, self.active, self.reach = info, ctx, active, reach
        self.overrides = overrides or {}
        self.pending: dict[str, list[str]] = {}
        self.final: dict[str, str] = {}

    def add(self, tensor: str, grad: str):
        self.pending.setdefault(tensor, []).append(grad)

    def total(self, tensor: str) -> str | None:
        """The summed gradient of ``tensor`` (computed once, when all consumers are done)."""
        if tensor not in self.final:
            parts = self.pending.pop(tensor, [])
            if not parts:
                return None
            self.final[tensor] = parts[0] if len(parts) == 1 else self.ctx.emit("Sum", parts)
        return self.final[tensor]

    def visit(self, node: onnx.NodeProto):
        ctx = self.ctx
        r = find_rule(node.op_type, self.info.opset, node.domain)
        fn = self.overrides.get(node.op_type)  # a rule set's rule comes before the registry's
        if node.domain not in ("", "ai.onnx"):
            fn = None
        skip = set(r.nondiff) if r is not None else set()
        needs = [
            bool(x) and x in self.reach and i not in skip and self.info.is_float(x)
            for i, x in enumerate(node.input)
        ]
        if not any(needs):
            return  # e.g. the producer of a `wrt` tensor: nothing upstream is differentiated
        if r is None and fn is None:
            raise UnsupportedOpError(
                node.op_type,
                node.name or node.output[0],
                supported_ops(),
                "no gradient rule for it, and it lies between the input and the score",
            )
        out_grads = [self.total(o) if o in self.active else None for o in node.output]
        if all(g is None for g in out_grads):
            return
        ctx.node, ctx._out_grads, ctx._needs = node, out_grads, needs
        result = (fn or r.fn)(ctx, node)
        assert len(result) == len(node.input), (
            f"gradient rule of {node.op_type} returned {len(result)} gradients "
            f"for {len(node.input)} inputs"
        )
        for x, gx, need in zip(node.input, result, needs):
            if need and gx is not None:
                self.add(x, gx)


def _reference_pass(info: GraphInfo, wrt: list, of: str, taken: set):
    """A copy of the forward nodes between ``wrt`` and ``of``, fed by one new input per ``wrt``
    tensor: the network run on a reference input beside the real one (Shrikumar et al. 2017,
    https://arxiv.org/abs/1704.02685, sec. 2.1), in the same batch row.

    Returns:
        ``(ref, nodes, inputs)``: ``{forward tensor: reference tensor}``, the copied nodes and
        ``{wrt tensor: added input name}``.
    """
    inputs = {w: _unique(f"{w}:reference", taken) for w in wrt}
    ref, upstream, nodes = dict(inputs), info.ancestors(of), []
    for node in info.nodes:
        if not any(i in ref for i in node.input) or not any(o in upstream for o in node.output):
            continue
        new = copy.deepcopy(node)
        new.name = _unique(f"{node.name or node.output[0]}:reference", taken)
        new.input[:] = [ref.get(i, i) for i in node.input]
        for k, o in enumerate(node.output):
            if o:
                ref[o] = new.output[k] = _unique(f"{o}:reference", taken)
        nodes.append(new)
    return ref, nodes, inputs


def gradient_model(model, of: str, wrt, expose=(), *, cpu: bool = False,
                   facts=None, rules: str | None = None) -> GradientModel:
    """Rewrite ``model`` so that it also returns gradients of ``sum(seed * of)``.

    Args:
        model: an ``onnx.ModelProto`` or a path to one.
        of: name of the differentiated tensor (e.g. the logits).
        wrt: tensor name or names (graph inputs or intermediate tensors) to differentiate with
            respect to.
        expose: further tensor names to add as outputs (e.g. CAM activations).
        cpu: build for ONNX Runtime's CPU provider only: strided convolutions' input gradients
            use MaxUnpool zero insertion + a stride-1 Conv (faster on the CPU; ONNX Runtime has
            no CUDA MaxUnpool kernel), and exact-GELU chains become ONNX Runtime's fused
            ``com.microsoft`` Gelu before opset 20 (:func:`.graph.fuse_gelu`; from opset 20 the
            standard Gelu, always). Default: forms every provider runs natively.
        facts: sizes and integer values that static shape inference could not find, from
            :func:`onnxviz.model.shapes.shape_facts` (``Model`` passes them; a graph whose shapes
            inference knows needs none).
        rules: name of a rule set (:mod:`.rulesets`) whose rules replace the registry's for the
            op types it names (a modified gradient such as ``"guided_backprop"``); ``None`` for
            the true gradient.

    Returns:
        A :class:`GradientModel`. Its model has one extra input (``seed``, shaped like ``of``);
        each image's seed row selects what that image's gradient is of, so one batched run gives
        per-image gradients.

    Raises:
        UnsupportedOpError: an op between ``wrt`` and ``of`` has no gradient rule.
        LayerError: a name in ``of``, ``wrt`` or ``expose`` is not a tensor of the graph.
        OptionError: ``rules`` names no rule set.
    """
    from . import rules as _registered  # noqa: F401  (registers the rules)
    from .rulesets import needs_reference, rule_set

    overrides = rule_set(rules) if rules is not None else {}

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    model = copy.deepcopy(model)
    wrt = [wrt] if isinstance(wrt, str) else list(wrt)
    expose = [expose] if isinstance(expose, str) else list(expose)
    info = GraphInfo.of(model)
    names = info.tensor_names()
    for n in [of, *wrt, *expose]:
        if n not in names:
            raise LayerError(n, sorted(names), what="tensor")
    fold_pads(model, keep={of, *wrt, *expose})
    if rules is None:  # a rule set may give the chain's ops rules of their own
        erf = cpu and info.opset < 20 and any(n.op_type == "Erf" for n in model.graph.node)
        before = GraphInfo.of(copy.deepcopy(model), facts) if erf else None
        if fuse_gelu(model, keep={of, *wrt, *expose}, contrib=cpu) and before is not None:
            facts = before  # ONNX shape inference does not know the contrib op's output
    info = GraphInfo.of(model, facts)
    names = info.tensor_names()
    for n in [of, *wrt, *expose]:
        if n not in names:
            raise LayerError(n, sorted(names), what="tensor")

    g = model.graph
    dtype = info.types.get(of, TensorProto.FLOAT)
    taken = set(names) | {n.name for n in g.node}
    ctx = Context(
        opset=info.opset,
        dtype=dtype,
        shapes=info.shapes,
        consts={k: v for k, v in info.consts.items() if k not in wrt},
        prefix=_unique("onnxviz_grad", taken),
        types=info.types,
        cpu=cpu,
    )
    seed = _unique("onnxviz_seed", taken)
    ref_nodes, ref_inputs = [], {}
    if rules is not None and needs_reference(rules):
        ctx.reference, ref_nodes, ref_inputs = _reference_pass(info, wrt, of, taken)
    reach = info.forward_reach(wrt)
    active = reach & info.ancestors(of)
    walk = _Walk(info, ctx, active, reach, overrides)
    walk.add(of, seed)
    for node in reversed(info.nodes):
        if any(o in active for o in node.output) and node.op_type != "Constant":
            walk.visit(node)

    grads = {}
    ctx.node = None
    out_vis = []
    for w in wrt:
        gw = walk.total(w)
        if gw is None:  # w does not influence `of`: its gradient is zero
            gw = ctx.zeros_like(w)
        out = _unique(f"{w}:grad", taken)
        ctx.nodes.append(helper.make_node("Identity", [gw], [out], name=out + "_node"))
        out_vis.append(_value_info(info, w, out, dtype))
        grads[w] = out

    exposed = {}
    graph_outputs = {o.name for o in g.output}
    plain_inputs = {i.name for i in g.input} | set(info.consts)
    for t in expose:
        if t in graph_outputs:
            exposed[t] = t
            continue
        if t in plain_inputs:
            out = _unique(f"{t}:value", taken)
            ctx.nodes.append(helper.make_node("Identity", [t], [out], name=out + "_node"))
        else:
            out = t
        out_vis.append(_value_info(info, t, out, dtype))
        exposed[t] = out

    del g.node[:]
    g.node.extend(info.nodes)
    g.node.extend(ref_nodes)
    g.node.extend(ctx.nodes)
    g.initializer.extend(ctx.initializers)
    g.input.append(_value_info(info, of, seed, dtype))
    g.input.extend(_value_info(info, w, name, dtype) for w, name in ref_inputs.items())
    g.output.extend(out_vis)
    if model.ir_version < 4:  # emitted initializers are not listed as graph inputs
        model.ir_version = 4
    return GradientModel(model=model, seed=seed, grads=grads, exposed=exposed, of=of,
                         references=ref_inputs)
