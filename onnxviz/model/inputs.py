"""Find the image input of a model: its name, layout (NCHW or NHWC), size and channel count.

Layout comes from the shape: the axis of size 1, 3 or 4 (channels) next to the batch axis is NCHW,
at the end NHWC (Keras/TensorFlow, e.g. tf2onnx ``x:0`` [unk, 32, 32, 3]); when both or neither
look like channels, NCHW (the ONNX convention) is assumed.

A flattened image (MATLAB's MNIST nets take [1, 1, 1, 784]) is a 1 x 784 one-channel "image";
when the width is a perfect square, ``flat_size`` records the square it was flattened from (28, 28)
and :meth:`Model.to_pixels` resizes images to that square before flattening them row by row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ..errors import ModelError

CHANNELS = (1, 3, 4)
#: Size used for inputs whose spatial dims are symbolic.
DEFAULT_SIZE = (224, 224)


@dataclass(frozen=True)
class InputSpec:
    """The model's image input.

    Attributes:
        name: graph input name.
        layout: ``"NCHW"`` or ``"NHWC"``.
        size: (H, W) of the tensor the model takes.
        channels: 1, 3 or 4 (or whatever the channel axis holds).
        dtype: numpy dtype of the input.
        batch: the batch dim as written in the graph (int or symbol name).
        dynamic_size: True when H/W were symbolic (``size`` is then :data:`DEFAULT_SIZE`).
        flat_size: (h, w) when the input is a flattened h x w image laid out as 1 x (h*w).
    """

    name: str
    layout: str
    size: tuple[int, int]
    channels: int
    dtype: np.dtype = np.dtype(np.float32)
    batch: int | str | None = None
    dynamic_size: bool = False
    flat_size: tuple[int, int] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Per-sample shape in model layout: (C, H, W) or (H, W, C)."""
        h, w = self.size
        return (self.channels, h, w) if self.layout == "NCHW" else (h, w, self.channels)

    @property
    def channel_axis(self) -> int:
        """Channel axis of a batched input tensor (1 or 3)."""
        return 1 if self.layout == "NCHW" else 3


def data_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers."""
    inits = {t.name for t in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def dims(value_info: onnx.ValueInfoProto) -> list[int | str | None]:
    """Dims of a tensor value: ints, symbol names, or None when unknown."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def find_input(proto: onnx.ModelProto, name: str | None = None) -> InputSpec:
    """The :class:`InputSpec` of the image input (``name`` picks one of several).

    Raises:
        ModelError: several inputs and no ``name``, an unknown ``name``, or a non-image input.
    """
    inputs = data_inputs(proto)
    names = [i.name for i in inputs]
    if not inputs:
        raise ModelError("the model has no inputs")
    if name is None:
        if len(inputs) > 1:
            raise ModelError(f"the model has {len(inputs)} inputs ({', '.join(names)}); "
                             "choose the image input with input=NAME (--input NAME)")
        vi = inputs[0]
    else:
        matches = [i for i in inputs if i.name == name]
        if not matches:
            raise ModelError(f"unknown input {name!r}; the model's inputs are: {', '.join(names)}")
        vi = matches[0]
    return _spec(vi)


def _spec(vi: onnx.ValueInfoProto) -> InputSpec:
    elem = vi.type.tensor_type.elem_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
    except Exception:
        dtype = np.dtype(np.float32)
    if not np.issubdtype(dtype, np.floating):
        raise ModelError(f"input {vi.name!r} has type {dtype}; onnxviz explains models with "
                         "floating-point image inputs")
    d = dims(vi)
    if len(d) != 4:
        raise ModelError(f"input {vi.name!r} has shape {d}; onnxviz expects a 4-D image batch "
                         "(N, C, H, W) or (N, H, W, C)")
    batch, a, b, c = d
    layout = _layout(a, c)
    ch, h, w = (a, b, c) if layout == "NCHW" else (c, a, b)
    dynamic = not (isinstance(h, int) and h > 0 and isinstance(w, int) and w > 0)
    size = DEFAULT_SIZE if dynamic else (int(h), int(w))
    if not (isinstance(ch, int) and ch > 0):
        ch = 3
    flat = None
    if not dynamic and size[0] == 1 and size[1] >= 16 and ch == 1:
        side = math.isqrt(size[1])
        if side * side == size[1]:
            flat = (side, side)
    return InputSpec(vi.name, layout, size, int(ch), dtype, batch, dynamic, flat)


def _layout(a, c) -> str:
    a_ch, c_ch = a in CHANNELS, c in CHANNELS
    if c_ch and not a_ch:
        return "NHWC"
    return "NCHW"


def probe(spec: InputSpec, n: int, seed: int = 0, size=None) -> np.ndarray:
    """A deterministic random input batch of ``n`` samples (normal values in model layout), at
    spatial ``size`` (H, W) when given instead of the input's."""
    rng = np.random.default_rng(seed)
    shape = spec.shape
    if size is not None:
        h, w = size
        shape = (spec.channels, h, w) if spec.layout == "NCHW" else (h, w, spec.channels)
    return rng.standard_normal((n, *shape)).astype(spec.dtype)
