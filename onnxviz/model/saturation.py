"""Quantizers that saturate: the output quantizer the default int8 gradient reads as identity,
and the diagnosis of a gradient that vanished.

The straight-through estimator defines a QuantizeLinear's gradient as zero where its value leaves
the integer range (:mod:`onnxviz.autodiff.rules.quant`). Inside a network that is the derivative
of the ReLU6 the quantization tool fused into the quantizer; on the logits it is the clipping of
the explained score itself: a logit past the range calibrated on a few images (the top class's
is the likeliest) has no gradient at all, and its map is blank. ``gradients="ste-logit"`` (the
QDQ default) differentiates the logit before those output quantizers
(:func:`before_output_quantizers`); :func:`why_vanished` names the quantizers that cut a
gradient when a map comes out blank anyway.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .layouts import GraphIndex


def before_output_quantizers(proto: onnx.ModelProto, score: str) -> tuple[str, list[str]]:
    """The tensor ``score`` is before its trailing QuantizeLinear -> DequantizeLinear pairs.

    Args:
        proto: the model.
        score: the explained score tensor (``Model.score_output``).

    Returns:
        ``(tensor, quantizers)``: the value the output quantizers round and clip (``score``
        itself when none does), and the names of those QuantizeLinear nodes, last first.
    """
    producer = {o: n for n in proto.graph.node for o in n.output if o}
    names = []
    while True:
        dq = producer.get(score)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" \
            else None
        if q is None or q.op_type != "QuantizeLinear":
            return score, names
        names.append(q.name or q.output[0])
        score = q.input[0]


def _saturated(x: np.ndarray, q: onnx.NodeProto, consts: dict, edge: bool = False):
    """``(mask, range)``: which values of ``x`` QuantizeLinear ``q`` saturates (``round(x / s) +
    z`` outside its integer type; at its ends too with ``edge``, for values read after the
    quantizer), and its real range in words; None when its scale or zero point is computed."""
    s = consts.get(q.input[1])
    z = consts.get(q.input[2]) if len(q.input) > 2 and q.input[2] else np.zeros((), np.uint8)
    if s is None or z is None:
        return None
    info = np.iinfo(z.dtype)
    s, z = np.asarray(s, np.float64), np.asarray(z, np.float64)
    if s.ndim == 1 and s.size > 1 and x.ndim > 1:  # per-axis parameters
        shape = [1] * x.ndim
        shape[next((a.i for a in q.attribute if a.name == "axis"), 1) % x.ndim] = -1
        s, z = s.reshape(shape), (z.reshape(shape) if z.size > 1 else z)
    r = np.round(x / s) + z
    lo, hi = float(np.min((info.min - z) * s)), float(np.max((info.max - z) * s))
    if edge:
        return (r <= info.min) | (r >= info.max), f"[{lo:.4g}, {hi:.4g}]"
    return (r < info.min) | (r > info.max), f"[{lo:.4g}, {hi:.4g}]"


def why_vanished(model, x: np.ndarray, target: int) -> str:
    """Which quantizers cut the gradient of ``target``'s score at ``x`` (one image), in words.

    Two causes are named: the file's own output for ``target`` sitting at its output
    quantizer's bound (``(max - zero_point) x scale``; mode ``"ste"``), and any quantizer that
    cuts the gradient inside the graph: the gradient reaching its output is non-zero and none
    passes to its input, since the straight-through estimator zeroes every value it saturates.
    Returns ``""`` for a model without QuantizeLinear in an STE mode, or when no quantizer is
    the cause (a dead ReLU, a constant output).
    """
    from .precision import STE_MODES

    if model.gradient_mode not in STE_MODES or model.precision.quantization != "qdq":
        return ""
    proto = model.gradient_source()
    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    nodes = {n.name or n.output[0]: n for n in proto.graph.node}
    said, named = [], set()
    _, outs = before_output_quantizers(proto, model.score_output)
    if model.gradient_mode == "ste" and outs:
        value = float(model.forward(x[:1])[0, target])
        found = _saturated(np.float64(value), nodes[outs[0]], consts, edge=True)
        if found is not None and found[0]:
            said.append(f"the file's logit {target} is {value:.4g}, the bound of its output "
                        f"quantizer {outs[0]!r} (range {found[1]}), where the "
                        "straight-through estimator defines the gradient as zero")
            named.add(outs[0])  # the cuts inside the graph are the other quantizers
    return "; ".join(said + _cuts(model, proto, consts, x, target, named))


def _cuts(model, proto, consts: dict, x: np.ndarray, target: int, named: set) -> list[str]:
    """Sentences on the quantizers (but those ``named``) that stop the gradient of ``target``
    inside the graph."""
    index = GraphIndex(proto, model.input.name, model.input.layout)
    upstream, consumers = index.ancestors(model.gradient_of()), index.consumers
    pairs = []  # (QuantizeLinear, the float DequantizeLinear output after it)
    for n in proto.graph.node:
        if n.op_type != "QuantizeLinear" or n.output[0] not in upstream:
            continue
        dq = next((c for c in consumers.get(n.output[0], []) if c.op_type == "DequantizeLinear"),
                  None)
        if dq is not None and n.input[0] not in consts and (n.name or n.output[0]) not in named:
            pairs.append((n, dq.output[0]))
    if not pairs:
        return []
    wrt = list(dict.fromkeys([q.input[0] for q, _ in pairs] + [d for _, d in pairs]))
    seed = np.zeros((1, model.num_classes), np.float32)
    seed[0, target] = 1
    grads, exposed, _ = model.gradients(x[:1], seed, wrt=wrt,
                                        expose=[q.input[0] for q, _ in pairs])
    said = []
    for q, dq in pairs:
        if not np.any(grads[dq]) or np.any(grads[q.input[0]]):
            continue
        v = exposed[q.input[0]]
        found = _saturated(v, q, consts)
        if found is None:
            continue
        mask, span = found
        name = q.name or q.output[0]
        if v.size == model.num_classes and target < v.size:
            said.append(f"quantizer {name!r} clips logit {target} at "
                        f"{float(v.ravel()[target]):.4g} (range {span})")
        else:
            over = v[mask]
            worst = float(over[np.argmax(np.abs(over))]) if over.size else float("nan")
            said.append(f"quantizer {name!r} saturates {mask.mean():.0%} of its values "
                        f"(range {span}, up to {worst:.4g}) where the gradient reaches it")
        if len(said) == 3:
            break
    return said


#: Ops that move values without changing them: a Sigmoid whose output reaches the score only
#: through these is the head's last word on a class score.
_LAYOUT_OPS = frozenset({"Concat", "Reshape", "Transpose", "Slice", "Split", "Squeeze",
                         "Unsqueeze", "Identity", "Flatten"})


def head_sigmoids(proto: onnx.ModelProto, score: str) -> list[str]:
    """The Sigmoid nodes whose outputs reach ``score`` only through ops that move values
    (concatenations, reshapes, slices): a detector head's class scores, squashed last.

    A box's confidence near 1 is a Sigmoid at its flat end (``p (1 - p)`` is 0 once ``p``
    rounds to 1 in float32), so its gradient vanishes and its map comes out blank, and every
    perturbation leaves it at 1; a box is explained on a twin of the detector that reads these
    Sigmoids as the identity (:func:`logits_for_gradients`, :func:`onnxviz.model.logit_twin`),
    so methods explain the class logit, as they explain a classifier's logit before its
    softmax. Box coordinates and YOLOv5's objectness products
    are untouched (their Sigmoid outputs are computed on, not only moved)."""
    consumers = GraphIndex(proto, "", "").consumers  # (no layouts needed)
    outputs = {o.name for o in proto.graph.output}

    def moved(t: str, seen: set) -> tuple[bool, bool]:  # (only moved, reaches score)
        if t == score:
            return True, True
        if t in seen:
            return True, False
        seen.add(t)
        users = consumers.get(t, [])
        if not users:
            return t in outputs, False
        reach = False
        for c in users:
            if c.op_type not in _LAYOUT_OPS or c.input[0] != t and c.op_type != "Concat":
                return False, False  # computed on, or used as a shape or an index
            for o in c.output:
                if o:
                    ok, r = moved(o, seen)
                    if not ok:
                        return False, False
                    reach = reach or r
        return True, reach

    found = []
    for n in proto.graph.node:
        if n.op_type == "Sigmoid":
            ok, reach = moved(n.output[0], set())
            if ok and reach:
                found.append(n.name or n.output[0])
    return found


def logits_for_gradients(proto: onnx.ModelProto, score: str) -> onnx.ModelProto:
    """``proto`` with its :func:`head_sigmoids` read as the identity (a copy; ``proto`` itself
    when it has none)."""
    import copy

    names = set(head_sigmoids(proto, score))
    if not names:
        return proto
    out = copy.deepcopy(proto)
    for n in out.graph.node:
        if n.op_type == "Sigmoid" and (n.name or n.output[0]) in names:
            n.op_type = "Identity"
            del n.attribute[:]
    return out
