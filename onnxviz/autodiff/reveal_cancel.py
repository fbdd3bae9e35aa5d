"""DeepLIFT's RevealCancel rule (Shrikumar et al. 2017, https://arxiv.org/abs/1704.02685,
sec. 3.5.3) as the rule set ``"deeplift_reveal_cancel"``.

For a nonlinearity ``y = f(z)`` whose input comes straight from a weighted layer
``z = W a + b`` (Conv, Gemm, MatMul), the difference ``dz = z - z'`` is split into the sums of the
layer's positive and negative terms, ``dz+ = W+ da+ + W- da-`` and ``dz- = W- da+ + W+ da-``
(``da = a - a'``, ``da+ = max(da, 0)``, ``da- = min(da, 0)``; sec. 3.5.1), and each part gets
the average effect of adding it before and after the other (eq. in sec. 3.5.3):
``dy+ = (f(z' + dz+) - f(z') + f(z) - f(z' + dz-)) / 2``, ``dy-`` alike. The multipliers
``m+ = dy+ / dz+`` and ``m- = dy- / dz-`` go back through the layer to the terms of their own
sign: ``m_a = [da > 0] (W+^T g m+ + W-^T g m-) + [da < 0] (W-^T g m+ + W+^T g m-)``.
The parts sum to ``dy``, so summation-to-delta holds.

Two rules cooperate: the nonlinearity's rule returns the rescale rule's multiplier for ``z`` and
leaves ``(that tensor, its node, the gradient of y)`` in ``ctx.reveal``; the weighted layer's
rule, finding its output there with exactly that gradient (``z`` feeds nothing else), back-
propagates RevealCancel's split instead of the linear rule. A nonlinearity fed by another op
(an Add, a BatchNormalization) keeps the rescale rule. Every other op has DeepLIFT's rule.
"""

from __future__ import annotations

import copy

# lrp's helpers are read when the rules run (lrp may still be importing when this module is)
from . import lrp as L
from .rulesets import RESCALE_EPS, override, rule_set, true_gradient

NAME = "deeplift_reveal_cancel"
NONLINEAR = ("Relu", "LeakyRelu", "Elu", "Softplus", "Tanh", "Sigmoid")
LINEAR = ("Conv", "Gemm", "MatMul")


def _nonlinear(ctx, node):
    """The rescale multiplier, and what the layer below needs for RevealCancel."""
    (grad,) = rule_set("deeplift")[node.op_type](ctx, node)
    ctx.__dict__.setdefault("reveal", {})[node.input[0]] = (grad, node, ctx.gy(0))
    return [grad]


def _apply(ctx, act, v):
    """The activation ``act`` applied to tensor ``v`` (a copy of the node in the forward part)."""
    new = copy.deepcopy(act)
    new.input[0] = v
    del new.output[1:]
    new.output[0] = ctx.fresh("reveal_f")
    new.name = new.output[0] + "_node"
    ctx.shapes[new.output[0]] = ctx.shapes.get(act.output[0])
    ctx.nodes.append(new)
    return new.output[0]


def _ratio(ctx, num, den):
    """``num / den``, 0 where ``|den| < 1e-10`` (no term of that sign: nothing to carry)."""
    tiny = ctx.emit("Less", [ctx.emit("Abs", [den]), ctx.fconst(RESCALE_EPS)])
    safe = ctx.emit("Where", [tiny, ctx.fconst(1.0), den])
    return ctx.emit("Where", [tiny, ctx.fconst(0.0), ctx.emit("Div", [num, safe])])


def _half_sum(ctx, a, b):
    return ctx.emit("Mul", [ctx.emit("Add", [a, b]), ctx.fconst(0.5)])


def _linear(ctx, node):
    """RevealCancel's split back through a weighted layer feeding a nonlinearity alone; the
    linear rule (its gradient) otherwise."""
    z = node.output[0]
    seen = getattr(ctx, "reveal", {}).get(z)
    if seen is None or ctx.gy(0) != seen[0] or any(ctx.needs(i) for i in range(1, len(node.input))):
        return true_gradient(ctx, node)
    _, act, g = seen
    a = node.input[0]
    da = ctx.emit("Sub", [a, ctx.reference_of(a)])
    dap = ctx.emit("Relu", [da])
    dan = ctx.emit("Sub", [da, dap])
    for t in (da, dap, dan):
        ctx.shapes[t] = ctx.shapes.get(a)
    pp, pn = L._layer(ctx, node, dap, L._pos, L._none), L._layer(ctx, node, dap, L._neg, L._none)
    dzp = ctx.emit("Add", [pp.output[0], L._layer(ctx, node, dan, L._neg, L._none).output[0]])
    dzn = ctx.emit("Add", [pn.output[0], L._layer(ctx, node, dan, L._pos, L._none).output[0]])
    z0, y0, y = ctx.reference_of(z), ctx.reference_of(act.output[0]), act.output[0]
    fp = _apply(ctx, act, ctx.emit("Add", [z0, dzp]))  # f(z' + dz+)
    fn = _apply(ctx, act, ctx.emit("Add", [z0, dzn]))  # f(z' + dz-)
    dyp = _half_sum(ctx, ctx.emit("Sub", [fp, y0]), ctx.emit("Sub", [y, fn]))
    dyn = _half_sum(ctx, ctx.emit("Sub", [fn, y0]), ctx.emit("Sub", [y, fp]))
    gp = ctx.emit("Mul", [g, _ratio(ctx, dyp, dzp)])
    gn = ctx.emit("Mul", [g, _ratio(ctx, dyn, dzn)])
    up = ctx.emit("Add", [L._back(ctx, pp, gp), L._back(ctx, pn, gn)])  # to da > 0
    down = ctx.emit("Add", [L._back(ctx, pn, gp), L._back(ctx, pp, gn)])  # to da < 0
    zero = ctx.fconst(0.0)
    pos = ctx.emit("Where", [ctx.emit("Greater", [da, zero]), up, zero])
    neg = ctx.emit("Where", [ctx.emit("Less", [da, zero]), down, zero])
    return [ctx.emit("Add", [pos, neg])] + [None] * (len(node.input) - 1)


for _op, _fn in rule_set("deeplift").items():
    if _op not in NONLINEAR:
        override(NAME, _op, reference=True)(_fn)
override(NAME, *NONLINEAR, reference=True)(_nonlinear)
override(NAME, *LINEAR, reference=True)(_linear)
