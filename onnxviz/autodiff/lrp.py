"""Layer-wise relevance propagation as rule sets (Bach et al. 2015,
https://doi.org/10.1371/journal.pone.0130140; Montavon et al. 2019, "Layer-wise relevance
propagation: an overview", https://doi.org/10.1007/978-3-030-28954-6_10, eq. 4-7 and sec. 10.2).

The relevance ``R`` reaching a layer's output ``z`` is divided by ``z + eps sign(z)`` (sign(0) = 1),
sent back through the layer's Jacobian and multiplied by the layer's input ``a``. The rules differ
in the weights (and inputs) that ``z`` and the Jacobian are computed with:

- ``epsilon``: the layer as it is (eq. 5);
- ``gamma``: ``W + gamma W+`` (eq. 6), biases kept (as Captum's GammaRule);
- ``zplus``: ``W+``, biases kept (Captum's Alpha1_Beta0_Rule);
- ``alphabeta``: the positive and negative contributions ``(a w)+``, ``(a w)-`` (biases split into
  ``b+`` and ``b-``) normalised separately and combined as ``alpha R+ - beta R-`` with
  ``alpha = 1 + beta`` (sec. 10.2.2);
- ``zb``: the bounded-input rule for the first layer on pixels (Montavon et al. 2017,
  https://doi.org/10.1016/j.patcog.2016.11.008, sec. 4.3; Montavon et al. 2019, table 3.1):
  ``z = W a - W+ l - W- h``, relevance ``a J_W^T s - l J_W+^T s - h J_W-^T s`` for the bounds
  ``l <= a <= h`` of the input; biases do not enter (they cancel in zennit's form).

Activations pass relevance on unchanged; pooling (``ReduceMean``/``ReduceSum`` too: a mean over
the map is a pooling) and BatchNormalization take the epsilon rule;
so do the elementwise linear ops (:func:`elementwise`): an ``Add`` of a constant (the bias of a
MatMul, as Keras and 3-D ``nn.Linear`` export) leaves its share with the bias, so the layer's
relevance is divided by its output with the bias, as Captum's rule on the whole ``nn.Linear``;
a residual ``Add`` of two activations splits relevance in proportion to them (relevance is
conserved, not copied to both branches); ``Mul``/``Div`` by a constant pass it on. Ops of no kind
(reshapes) keep their gradients. :class:`LRPRules` maps op types to rules
(a rule set with parameters, like zennit's composites); the named sets ``lrp_<conv>_<dense>``
are its defaults.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import numpy as np

from .rulesets import override, true_gradient

LRP_EPSILON = 1e-9  # Captum's EpsilonRule default, and every other rule's stabiliser
LRP_GAMMA = 0.25  # Captum's GammaRule default
LAYER_RULES = ("epsilon", "gamma", "zplus", "alphabeta")
FIRST_RULES = LAYER_RULES + ("zb",)
POOLING = ("AveragePool", "GlobalAveragePool", "MaxPool", "BatchNormalization", "ReduceMean",
           "ReduceSum")
WEIGHTED = ("Conv", "Gemm", "MatMul")
PASS = ("Relu", "Tanh", "Dropout", "Identity", "Clip")
LINEAR = ("Add", "Sub", "Mul", "Div")


def _pos(w):
    return np.maximum(w, 0)


def _neg(w):
    return np.minimum(w, 0)


def _none(b):
    return np.zeros_like(b)


def _layer(ctx, node, x=None, weights=None, bias=None):
    """A copy of weighted layer ``node`` added to the forward graph, reading ``x`` (default: its
    input) with weights ``weights(W)`` and bias ``bias(b)`` (default: unchanged)."""
    new = copy.deepcopy(node)
    if x is not None:
        new.input[0] = x
    for i, fn in ((1, weights), (2, bias)):
        if fn is None or i >= len(node.input) or not node.input[i]:
            continue
        value = ctx.const_value(node.input[i])
        if value is None:
            ctx.fail("this LRP rule changes the layer's weights and bias, which must be constants "
                     "(initializers)")
        name = ctx.const(fn(np.asarray(value, np.float64)), hint="lrp_param")
        ctx.shapes[name] = list(value.shape)
        new.input[i] = name
    del new.output[1:]
    new.output[0] = ctx.fresh("lrp_z")
    new.name = new.output[0] + "_node"
    ctx.shapes[new.output[0]] = ctx.shapes.get(node.output[0])
    ctx.nodes.append(new)
    return new


def _divide(ctx, r, z, eps):
    """``r / (z + eps sign(z))`` with sign(0) = 1 (Captum's stabiliser)."""
    step = ctx.emit("Where", [ctx.emit("Less", [z, ctx.fconst(0.0)]), ctx.fconst(-eps),
                              ctx.fconst(eps)])
    return ctx.emit("Div", [r, ctx.emit("Add", [z, step])])


def _back(ctx, layer, s):
    """``J^T s`` for the layer (copy) ``layer``: its input gradient seeded with ``s``."""
    return true_gradient(ctx, layer, [s] + [None] * (len(layer.output) - 1))[0]


def _check(ctx, node):
    if any(ctx.needs(i) for i in range(1, len(node.input))):
        ctx.fail("LRP here shares relevance between the layer's input and constant weights; "
                 "this node's other inputs are computed from the image too (attention?)")


def _out(node, r):
    return [r] + [None] * (len(node.input) - 1)


def epsilon(eps=LRP_EPSILON, weights=None):
    """The rule ``a * J'^T (R / (z' + eps sign(z')))``, where ``z'`` and ``J'`` are the layer's
    output and Jacobian with its weight replaced by ``weights(W)`` (the layer as it is when None)."""

    def fn(ctx, node):
        _check(ctx, node)
        layer = node if weights is None else _layer(ctx, node, weights=weights)
        s = _divide(ctx, ctx.gy(0), layer.output[0], eps)
        return _out(node, ctx.emit("Mul", [_back(ctx, layer, s), node.input[0]]))

    return fn


def gamma(g=LRP_GAMMA):
    """Montavon et al. 2019, eq. 6: positive weights favoured, ``W + gamma W+``."""
    return epsilon(weights=lambda w: w + g * _pos(w))


def alphabeta(beta=1.0):
    """Montavon et al. 2019, sec. 10.2.2: ``R_i = sum_j (alpha (a_i w_ij)+ / z_j+ - beta
    (a_i w_ij)- / z_j-) R_j``, ``alpha = 1 + beta``, with ``z_j+ = sum_i (a_i w_ij)+ + b_j+``
    and ``z_j-`` alike. With ``a = a+ + a-``: ``(a w)+ = a+ W+ + a- W-``."""

    def fn(ctx, node):
        _check(ctx, node)
        a, r = node.input[0], ctx.gy(0)
        ap = ctx.emit("Relu", [a])
        an = ctx.emit("Sub", [a, ap])
        ctx.shapes[ap] = ctx.shapes[an] = ctx.shapes.get(a)
        pp = _layer(ctx, node, ap, _pos, _pos)  # a+ W+ + b+, and J_W+
        pn = _layer(ctx, node, ap, _neg, _neg)  # a+ W- + b-, and J_W-
        zp = ctx.emit("Add", [pp.output[0], _layer(ctx, node, an, _neg, _none).output[0]])
        sp = _divide(ctx, ctx.emit("Mul", [r, ctx.fconst(1.0 + beta)]), zp, LRP_EPSILON)
        up, un = _back(ctx, pp, sp), _back(ctx, pn, sp)  # to a+ and a- from R+
        if beta:
            zn = ctx.emit("Add", [pn.output[0], _layer(ctx, node, an, _pos, _none).output[0]])
            sn = _divide(ctx, ctx.emit("Mul", [r, ctx.fconst(beta)]), zn, LRP_EPSILON)
            up = ctx.emit("Sub", [up, _back(ctx, pn, sn)])
            un = ctx.emit("Sub", [un, _back(ctx, pp, sn)])
        return _out(node, ctx.emit("Add", [ctx.emit("Mul", [up, ap]), ctx.emit("Mul", [un, an])]))

    return fn


def zbox(low: np.ndarray, high: np.ndarray):
    """The z^B rule for an input bounded by ``low <= a <= high`` (arrays broadcast against it):
    ``z = W a - W+ l - W- h``, ``R_a = a J_W^T s - l J_W+^T s - h J_W-^T s``, ``s = R / z``."""

    def fn(ctx, node):
        _check(ctx, node)
        lo, hi = ctx.const(low, hint="lrp_low"), ctx.const(high, hint="lrp_high")
        ctx.shapes[lo], ctx.shapes[hi] = list(low.shape), list(high.shape)
        plain = _layer(ctx, node, None, lambda w: w, _none)
        z = ctx.emit("Sub", [plain.output[0], _layer(ctx, node, lo, _pos, _none).output[0]])
        z = ctx.emit("Sub", [z, _layer(ctx, node, hi, _neg, _none).output[0]])
        s = _divide(ctx, ctx.gy(0), z, LRP_EPSILON)
        parts = [ctx.emit("Mul", [_back(ctx, plain, s), node.input[0]]),
                 ctx.emit("Mul", [_back(ctx, _layer(ctx, node, None, _pos, _none), s), lo]),
                 ctx.emit("Mul", [_back(ctx, _layer(ctx, node, None, _neg, _none), s), hi])]
        return _out(node, ctx.emit("Sub", [ctx.emit("Sub", parts[:2]), parts[2]]))

    return fn


def elementwise(eps=LRP_EPSILON):
    """The epsilon rule of an elementwise op linear in each input that is not a constant
    (``Add``, ``Sub``; ``Mul``, ``Div`` by a constant): ``R_i = x_i * d(s . y)/dx_i`` with
    ``s = R / (y + eps sign y)``, summed over broadcast axes by the op's gradient rule. For a
    sum, ``R_i = x_i R / y``; for a product with a constant, ``R_x = R``."""

    def fn(ctx, node):
        varying = [i for i in range(len(node.input)) if ctx.needs(i)]
        if (node.op_type in ("Mul", "Div") and len(varying) > 1) or varying == [1] and \
                node.op_type == "Div":
            return true_gradient(ctx, node)  # products of two activations, c / x: not linear
        s = _divide(ctx, ctx.gy(0), node.output[0], eps)
        grads = true_gradient(ctx, node, [s])
        return [ctx.emit("Mul", [g, node.input[i]]) if g is not None and ctx.needs(i) else None
                for i, g in enumerate(grads)]

    return fn


def _pass(ctx, node):
    """Relevance goes through the activation unchanged."""
    return _out(node, ctx.gy(0))


def _first(inner, first, tensor):
    """``first`` for the layers reading ``tensor`` (the first layer), ``inner`` for the others."""
    return lambda ctx, node: (first if node.input[0] == tensor else inner)(ctx, node)


@dataclass(frozen=True)
class LRPRules:
    """A parametrised LRP rule set: pass one as ``rules=`` to :func:`.gradient_model`.

    Attributes:
        conv: the rule of Conv layers (:data:`LAYER_RULES`).
        dense: the rule of Gemm and MatMul layers.
        epsilon: the epsilon rule's ``eps`` (its layers, pooling and BatchNormalization).
        gamma: the gamma rule's ``gamma``.
        beta: the alpha-beta rule's ``beta`` (``alpha = 1 + beta``).
        first: the rule of the weighted layers reading tensor ``first_input`` (:data:`FIRST_RULES`),
            or ``""`` for none.
        first_input: the tensor the first layer reads.
        low, high: ``zb``'s bounds of that tensor (float32 bytes, shaped ``bounds_shape``).
    """

    conv: str = "epsilon"
    dense: str = "epsilon"
    epsilon: float = LRP_EPSILON
    gamma: float = LRP_GAMMA
    beta: float = 1.0
    first: str = ""
    first_input: str = ""
    low: bytes = b""
    high: bytes = b""
    bounds_shape: tuple = ()
    reference = False

    def rule(self, name: str):
        if name == "zb":
            def bound(b):
                return np.frombuffer(b, np.float32).reshape(self.bounds_shape)
            return zbox(bound(self.low), bound(self.high))
        return {"epsilon": lambda: epsilon(self.epsilon), "gamma": lambda: gamma(self.gamma),
                "zplus": lambda: epsilon(weights=_pos),
                "alphabeta": lambda: alphabeta(self.beta)}[name]()

    def table(self) -> dict:
        return _table(self)


@functools.lru_cache(maxsize=32)
def _table(spec: LRPRules) -> dict:
    conv, dense = spec.rule(spec.conv), spec.rule(spec.dense)
    if spec.first:
        first = spec.rule(spec.first)
        conv, dense = _first(conv, first, spec.first_input), _first(dense, first, spec.first_input)
    table = {op: epsilon(spec.epsilon) for op in POOLING}
    table.update({op: elementwise(spec.epsilon) for op in LINEAR})
    table.update({"Conv": conv, "Gemm": dense, "MatMul": dense})
    table.update({op: _pass for op in PASS})
    return table


# The named sets "lrp_<conv>_<dense>" (and "lrp_<rule>" when both are the same) with the default
# parameters (zennit's composites map layer types to rules the same way).
for _conv in LAYER_RULES:
    for _dense in LAYER_RULES:
        _names = [f"lrp_{_conv}_{_dense}"] + ([f"lrp_{_conv}"] if _conv == _dense else [])
        for _name in _names:
            for _op, _fn in LRPRules(_conv, _dense).table().items():
                override(_name, _op)(_fn)
