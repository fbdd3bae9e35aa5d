"""How each ONNX op maps a changed rectangle of its input to its output: one rule per op family.

A rule looks at one node and returns its :class:`Geometry`, or raises :class:`Unsupported` with
the reason. Two kinds exist:

- *window* ops (Conv, MaxPool, AveragePool, Pad) read, for every output row, ``k`` consecutive
  rows of the padded input starting at ``row * s`` (``k = (kernel - 1) * dilation + 1``). They
  have one image-dependent input (0); weights, biases and pads are constants.
- *pointwise* ops (activations, BatchNormalization, Add/Mul of branches, Concat over channels,
  Transpose) read each output position at the same position of every input: the changed
  rectangle is the union of their inputs' rectangles.

Krypton (Nakandala, Kumar and Papakonstantinou, "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations", SIGMOD 2019, sec. 3.2, eq. 1-4) gives the same
projective-field arithmetic for convolution and pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import helper

_RULES: dict = {}


class Unsupported(Exception):
    """The propagation does not understand this node (the reason is the message)."""


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a window op: extent ``k`` read per output row, stride ``s``, padding
    before (``pb``) and after (``pe``, ceil_mode's extra row included)."""

    k: int
    s: int
    pb: int
    pe: int


@dataclass(frozen=True)
class Geometry:
    """What a rule says about a node.

    Attributes:
        kind: ``"window"`` or ``"pointwise"``.
        inputs: indices of the node inputs that may carry the image (the others are constants).
        axes: for window ops, the (height, width) :class:`Axis`.
        pad_value: what a window op's padding holds (0, or -inf for MaxPool).
        perm: for Transpose, the permutation (spatial axes move with it).
    """

    kind: str
    inputs: tuple[int, ...] = (0,)
    axes: tuple[Axis, Axis] | None = None
    pad_value: float = 0.0
    perm: tuple[int, ...] | None = None


class Context:
    """What a rule may ask about the graph: shapes, constants, spatial axes (filled by the plan)."""

    def __init__(self, shapes: dict, consts: dict, spatial: dict):
        self.shapes, self.consts, self.spatial = shapes, consts, spatial

    def shape(self, name: str) -> tuple:
        s = self.shapes.get(name)
        if not s or not all(isinstance(d, (int, np.integer)) for d in s[1:]):
            raise Unsupported(f"the shape of {name!r} is not known")
        return tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in s)

    def const(self, node, i: int):
        """Input ``i`` of ``node`` as an array (None when absent); Unsupported if computed."""
        return None if self.const_shape(node, i) is None else self.consts.value(node.input[i])

    def const_shape(self, node, i: int):
        """The shape of constant input ``i`` of ``node`` (None when absent; Unsupported if it is
        computed), without reading its values."""
        if i >= len(node.input) or not node.input[i]:
            return None
        if node.input[i] not in self.consts:
            raise Unsupported(f"input {i} of {node.op_type} is computed, not a constant")
        return self.consts.shape(node.input[i])


def rule(*ops):
    """Register a rule for ``ops``."""
    def deco(fn):
        for op in ops:
            _RULES[op] = fn
        return fn
    return deco


def geometry(node, ctx: Context) -> Geometry:
    """The :class:`Geometry` of ``node``; Unsupported when no rule knows it."""
    fn = _RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    if fn is None:
        raise Unsupported(f"{node.op_type} is not a local op (supported: "
                          f"{', '.join(sorted(_RULES))})")
    if node.op_type not in NARY and (not node.input or node.input[0] not in ctx.spatial):
        raise Unsupported(f"input 0 of {node.op_type} is not a local tensor")
    return fn(node, _attrs(node), ctx)


def supported() -> list[str]:
    return sorted(_RULES)


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _nchw(node, ctx: Context) -> tuple:
    shape = ctx.shape(node.input[0])
    if len(shape) != 4 or ctx.spatial.get(node.input[0]) != (2, 3):
        raise Unsupported(f"{node.op_type} on a tensor that is not NCHW")
    return shape


def _window_axes(in_hw, kernel, a: dict, ceil: bool = False) -> tuple[Axis, Axis]:
    strides = list(a.get("strides") or [1, 1])
    dil = list(a.get("dilations") or [1, 1])
    pads = list(a.get("pads") or [0, 0, 0, 0])
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    axes = []
    for i in range(2):
        k = (int(kernel[i]) - 1) * int(dil[i]) + 1
        s, n = int(strides[i]), int(in_hw[i])
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            total = max(0, (-(-n // s) - 1) * s + k - n)
            pb = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pe = total - pb
        elif auto == "VALID":
            pb = pe = 0
        else:
            pb, pe = int(pads[i]), int(pads[i + 2])
        if pb < 0 or pe < 0:
            raise Unsupported("negative pads")
        span = n + pb + pe - k
        out = (-(-span // s) if ceil else span // s) + 1
        if ceil and (out - 1) * s >= n + pb:  # ONNX drops a window starting in the end padding
            out -= 1
        pe = max(pe, (out - 1) * s + k - n - pb)  # ceil_mode reads past the end padding
        axes.append(Axis(k, s, pb, pe))
    return axes[0], axes[1]


@rule("Conv")
def _conv(node, a, ctx):
    shape = _nchw(node, ctx)
    w = ctx.const_shape(node, 1)
    ctx.const_shape(node, 2)
    kernel = a.get("kernel_shape") or w[2:]
    if len(kernel) != 2:
        raise Unsupported("Conv that is not 2-D")
    return Geometry("window", axes=_window_axes(shape[2:], kernel, a))


@rule("MaxPool")
def _maxpool(node, a, ctx):
    shape = _nchw(node, ctx)
    if len(node.output) > 1 and node.output[1]:
        raise Unsupported("MaxPool with an Indices output")
    axes = _window_axes(shape[2:], a["kernel_shape"], a, bool(a.get("ceil_mode", 0)))
    return Geometry("window", axes=axes, pad_value=-np.inf)


@rule("AveragePool")
def _avgpool(node, a, ctx):
    shape = _nchw(node, ctx)
    plain = _window_axes(shape[2:], a["kernel_shape"], a)
    axes = _window_axes(shape[2:], a["kernel_shape"], a, bool(a.get("ceil_mode", 0)))
    padded = any(x.pb or x.pe for x in plain)
    if padded and not a.get("count_include_pad", 0):
        raise Unsupported("AveragePool that excludes its padding from the mean")
    if axes != plain:
        raise Unsupported("AveragePool whose ceil_mode window runs past the padding")
    return Geometry("window", axes=axes)


def pad_of(node, ctx: Context) -> tuple[list[int], float]:
    """A constant-mode Pad's ``pads`` (ONNX order: every axis's start, then every end) and value,
    from its attributes (before opset 11) or its constant inputs; Unsupported otherwise."""
    a = _attrs(node)
    mode = a.get("mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        raise Unsupported("Pad in a mode other than constant")
    pads = a.get("pads") if "pads" in a else ctx.const(node, 1)
    value = a.get("value", 0.0) if "pads" in a else ctx.const(node, 2)
    if len(node.input) > 3 and node.input[3]:
        raise Unsupported("Pad with axes")
    return ([int(p) for p in np.asarray(pads).ravel()],
            float(np.asarray(value if value is not None else 0.0).ravel()[0]))


@rule("Pad")
def _pad(node, a, ctx):
    pads, value = pad_of(node, ctx)
    shape = ctx.shape(node.input[0])
    r = len(shape)
    ya, xa = ctx.spatial[node.input[0]]
    if any(p != 0 for i, p in enumerate(pads) if i % r not in (ya, xa)) or min(pads) < 0:
        raise Unsupported("Pad of a non-spatial axis or a negative pad")
    axes = (Axis(1, 1, pads[ya], pads[ya + r]), Axis(1, 1, pads[xa], pads[xa + r]))
    return Geometry("window", axes=axes, pad_value=value)


#: Ops that act on each position alone, with at most constant extra inputs.
UNARY = ("Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid",
         "HardSwish", "Tanh", "Softplus", "Softsign", "Clip", "Exp", "Log", "Sqrt", "Neg", "Abs",
         "Erf", "Gelu", "Mish", "Reciprocal", "Floor", "Ceil", "Round", "Sin", "Cos",
         "Identity", "Dropout", "Cast", "BatchNormalization", "LRN", "ThresholdedRelu", "Sign")
#: Ops that combine several tensors position by position (numpy broadcasting).
NARY = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where")


@rule(*UNARY)
def _unary(node, a, ctx):
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise Unsupported("Dropout with a mask output")
    if node.op_type == "BatchNormalization" and len(node.output) > 1:
        raise Unsupported("BatchNormalization in training mode")
    if node.op_type == "Cast" and a.get("to") not in (1, 11):
        raise Unsupported("Cast to a non-float type")
    for i in range(1, len(node.input)):
        if node.op_type == "BatchNormalization":  # per-channel parameters (axis 1)
            ctx.const_shape(node, i)
        else:
            _flat_const(node, i, ctx)
    return Geometry("pointwise")


@rule(*NARY)
def _nary(node, a, ctx):
    dyn = [i for i, t in enumerate(node.input) if t in ctx.spatial]
    for i, t in enumerate(node.input):
        if i not in dyn:
            _flat_const(node, i, ctx)
    shapes = {ctx.shape(node.input[i]) for i in dyn}
    axes = {ctx.spatial[node.input[i]] for i in dyn}
    if len(shapes) != 1 or len(axes) != 1:
        raise Unsupported(f"{node.op_type} broadcasts image tensors of different shapes")
    return Geometry("pointwise", inputs=tuple(dyn))


def _flat_const(node, i, ctx):
    """A constant input that broadcasts over the spatial axes (one value per channel or less)."""
    value = ctx.const_shape(node, i)
    if value is None:
        return
    shape = ctx.shape(node.input[0]) if node.input[0] in ctx.spatial else None
    if shape is None or len(value) == 0:
        return
    ya, xa = ctx.spatial[node.input[0]]
    full = (1,) * (len(shape) - len(value)) + tuple(value)
    if len(full) != len(shape) or full[ya] != 1 or full[xa] != 1:
        raise Unsupported(f"{node.op_type} with a constant that varies over positions")


@rule("Concat")
def _concat(node, a, ctx):
    rank = len(ctx.shape(node.input[0]))
    axis = int(a.get("axis", 1)) % rank
    for t in node.input:
        if t not in ctx.spatial:
            raise Unsupported("Concat of the image with a computed or constant tensor")
    axes = {ctx.spatial[t] for t in node.input}
    if len(axes) != 1 or axis == 0 or axis in axes.pop():
        raise Unsupported("Concat along the batch or a spatial axis")
    return Geometry("pointwise", inputs=tuple(range(len(node.input))))


@rule("Transpose")
def _transpose(node, a, ctx):
    perm = tuple(int(p) for p in a.get("perm", ()))
    if not perm or perm[0] != 0:
        raise Unsupported("Transpose that moves the batch axis")
    return Geometry("pointwise", perm=perm)
