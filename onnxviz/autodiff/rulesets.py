"""Rule sets: named tables ``{op_type: rule}`` that replace the registry's rules of a few ops.

A modified-gradient method (guided backpropagation, deconvolution, ...) is the same reverse walk
as the gradient, with different rules for some op types. ``gradient_model(..., rules="deconvolution")``
consults the named table before the registry (:mod:`.registry`); every op the table does not name
keeps its true gradient rule. A table rule has the registry's signature ``fn(ctx, node)`` and
returns one tensor per node input.

Tables register with :func:`override`; :func:`rule_set` looks one up by name. A rule registered
with ``reference=True`` reads the forward tensors' values on a reference input as well
(``ctx.reference_of(name)``): the rewritten model then has one more input per ``wrt`` tensor
(``GradientModel.references``) and runs the forward pass on it beside the real input.
A set with parameters (LRP's epsilon, gamma, ...) is a hashable object with a ``table()``
(:class:`.lrp.LRPRules`), passed as ``rules=`` in place of a name.
"""

from __future__ import annotations

import copy

from ..errors import OptionError, close_matches
from .registry import RuleFn, find_rule

_SETS: dict[str, dict[str, RuleFn]] = {}
_REFERENCE: set[str] = set()  # rule sets whose rules read a reference pass


def override(name: str, *op_types: str, reference: bool = False):
    """Register ``fn`` as the rule of ``op_types`` in the rule set ``name``.

    Args:
        name: the rule set.
        op_types: ONNX op types (default domain) whose rule ``fn`` replaces.
        reference: ``fn`` reads the reference pass (``ctx.reference_of``).
    """

    def deco(fn: RuleFn) -> RuleFn:
        table = _SETS.setdefault(name, {})
        for op in op_types:
            if op in table:
                raise ValueError(f"rule set {name!r} overrides {op!r} twice")
            table[op] = fn
        if reference:
            _REFERENCE.add(name)
        return fn

    return deco


def needs_reference(name) -> bool:
    """Whether rule set ``name`` needs the forward pass on a reference input."""
    if not isinstance(name, str):
        return bool(name.reference)
    rule_set(name)
    return name in _REFERENCE


def rule_sets() -> list[str]:
    """Names of the registered rule sets."""
    return sorted(_SETS)


def rule_set(name) -> dict[str, RuleFn]:
    """The table of rule set ``name``; an unknown name lists the close ones. ``name`` may also be
    a rule set with parameters (such as :class:`.lrp.LRPRules`): a hashable object whose
    ``table()`` is the table and ``reference`` says whether it needs a reference pass."""
    if not isinstance(name, str):
        return name.table()
    try:
        return _SETS[name]
    except KeyError:
        hint = close_matches(name, _SETS) or rule_sets()
        raise OptionError(f"unknown rule set {name!r}; choose from: {', '.join(hint)}") from None


def true_gradient(ctx, node, grads=None) -> list:
    """The registry's rule of ``node``, optionally fed other output gradients ``grads``
    (for rules that rescale what flows in and then back-propagate it as the gradient would).
    ``node`` may be a modified copy of the current node (other weights), with the same inputs
    needing gradients."""
    r = find_rule(node.op_type, ctx.opset)
    if r is None:
        ctx.fail("the rule set needs its gradient rule, and there is none")
    saved = ctx._out_grads, ctx.node
    if grads is not None:
        ctx._out_grads = list(grads)
    ctx.node = node
    try:
        return r.fn(ctx, node)
    finally:
        ctx._out_grads, ctx.node = saved


# --- ReLU backward passes of Springenberg et al. 2015 (https://arxiv.org/abs/1412.6806, fig. 1)
# and Zeiler & Fergus 2014 (https://arxiv.org/abs/1311.2901, sec. 2.1) --------------------------

@override("guided_backprop", "Relu")
def _guided_relu(ctx, node):
    """Only positive gradients pass, and only where the unit was active: ``ReLU(g) * (y > 0)``."""
    (dx,) = true_gradient(ctx, node)
    return [ctx.emit("Relu", [dx])]


@override("deconvolution", "Relu")
def _deconv_relu(ctx, node):
    """The ReLU applied to the gradient instead of the forward mask: ``ReLU(g)``."""
    return [ctx.emit("Relu", [ctx.gy(0)])]


# --- DeepLIFT's rescale rule (Shrikumar et al. 2017, https://arxiv.org/abs/1704.02685, eq. 3 and
# sec. 3.3): linear ops keep their gradients, elementwise nonlinearities pass back the ratio of
# the output's to the input's difference from the reference ----------------------------------------

RESCALE_EPS = 1e-10  # |x - x'| below this: the difference quotient is replaced by the gradient


def _rescaled(ctx, node, secant):
    """``g * secant``, or the gradient ``g * f'(x)`` where ``|x - x'| < 1e-10``; ``secant(dx)``
    builds ``(y - y') / (x - x')`` from ``dx = x - x'``."""
    x = node.input[0]
    dx = ctx.emit("Sub", [x, ctx.reference_of(x)])
    grad = true_gradient(ctx, node)[0]
    tiny = ctx.emit("Less", [ctx.emit("Abs", [dx]), ctx.fconst(RESCALE_EPS)])
    return [ctx.emit("Where", [tiny, grad, ctx.emit("Mul", [ctx.gy(0), secant(dx)])])]


@override("deeplift", "Relu", "LeakyRelu", "Elu", "Softplus", reference=True)
def _rescale(ctx, node):
    """The difference quotient as written: exact for the piecewise-linear units (where
    ``y - y'`` is ``x - x'`` or 0 when both lie on one side of the kink)."""
    y = node.output[0]
    dy = ctx.emit("Sub", [y, ctx.reference_of(y)])
    return _rescaled(ctx, node, lambda dx: ctx.emit("Div", [dy, dx]))


def _tanh_ratio(ctx, d):
    """``tanh(d) / d``, 1 near 0 (the caller masks ``|d| < 1e-10``)."""
    return ctx.emit("Div", [ctx.emit("Tanh", [d]), d])


@override("deeplift", "Tanh", reference=True)
def _rescale_tanh(ctx, node):
    """``tanh(a) - tanh(b) = (1 - tanh(a) tanh(b)) tanh(a - b)``: no difference of two close
    values, which float32 rounding turns into noise (written as a difference: 2e-4 of the largest
    attribution off Captum's float64, measured; this way: 2e-6)."""
    y = node.output[0]
    one_minus = ctx.emit("Sub", [ctx.fconst(1.0), ctx.emit("Mul", [y, ctx.reference_of(y)])])
    return _rescaled(ctx, node, lambda dx: ctx.emit("Mul", [one_minus, _tanh_ratio(ctx, dx)]))


@override("deeplift", "Sigmoid", reference=True)
def _rescale_sigmoid(ctx, node):
    """``s(a) - s(b) = s(a) (1 - s(b)) (1 - exp(-d))`` with ``1 - exp(-d) = 2 t / (1 + t)``,
    ``t = tanh(d / 2)``, ``d = a - b``: no difference of two close values."""
    y = node.output[0]
    front = ctx.emit("Mul", [y, ctx.emit("Sub", [ctx.fconst(1.0), ctx.reference_of(y)])])

    def secant(dx):
        half = ctx.emit("Mul", [dx, ctx.fconst(0.5)])
        t = ctx.emit("Tanh", [half])
        q = ctx.emit("Div", [_tanh_ratio(ctx, half), ctx.emit("Add", [ctx.fconst(1.0), t])])
        return ctx.emit("Mul", [front, q])  # 2t / ((1 + t) d) = (t / (d/2)) / (1 + t)

    return _rescaled(ctx, node, secant)


@override("deeplift", "MaxPool", reference=True)
def _rescale_maxpool(ctx, node):
    """Max pooling compared with its reference (Captum's rule): with ``M = max(y, y')`` the
    difference ``y - y'`` is split into ``M - y'``, routed to the input's argmax, and ``y - M``,
    routed to the reference's argmax; the sum over each window is divided by ``x - x'`` (the
    gradient where ``|x - x'| < 1e-10``)."""
    x, y, g = node.input[0], node.output[0], ctx.gy(0)
    ref_x, ref_y = ctx.reference_of(x), ctx.reference_of(y)
    top = ctx.emit("Max", [y, ref_y])
    own = true_gradient(ctx, node, [ctx.emit("Mul", [g, ctx.emit("Sub", [top, ref_y])])])[0]
    twin = copy.deepcopy(node)  # the reference's pooling, whose indices route the second part
    twin.input[0] = ref_x
    del twin.output[1:]
    twin.output[0] = ctx.fresh("reference_pool")
    twin.name = twin.output[0] + "_node"
    ctx.shapes[ref_x], ctx.shapes[twin.output[0]] = ctx.shapes.get(x), ctx.shapes.get(y)
    ctx.nodes.append(twin)
    other = true_gradient(ctx, twin, [ctx.emit("Mul", [g, ctx.emit("Sub", [y, top])])])[0]
    dx = ctx.emit("Sub", [x, ref_x])
    tiny = ctx.emit("Less", [ctx.emit("Abs", [dx]), ctx.fconst(RESCALE_EPS)])
    ratio = ctx.emit("Div", [ctx.emit("Add", [own, other]), dx])
    return [ctx.emit("Where", [tiny, true_gradient(ctx, node)[0], ratio])]


@override("deeplift", "Softmax", "LogSoftmax", reference=True)
def _no_rescale(ctx, node):
    ctx.fail("DeepLIFT here has rules for MaxPool and the elementwise activations (Relu, "
             "LeakyRelu, Elu, Sigmoid, Tanh, Softplus); its multipliers through this op are not "
             "implemented")


from . import lrp as _lrp  # noqa: F401  (registers the LRP sets; it imports this module)
from . import reveal_cancel as _reveal_cancel  # noqa: F401  (DeepLIFT's RevealCancel set)
