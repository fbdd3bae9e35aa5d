"""Which tensors of a graph are maps over the image: feature maps and vision-transformer tokens.

A layer-based method (the CAM family) needs a tensor whose positions are places in the image. Two
kinds qualify, both read from the graph's structure:

- a **feature map**, 4-D ``[N, C, H, W]`` or channel-last ``[N, H, W, C]`` (Swin, MaxViT, Keras):
  its layout is placed by the walk from the input (:attr:`GraphIndex.layouts`), or its ``(H, W)``
  is one of the graph's grids;
- a **token sequence** ``[N, T, C]`` (ViT, DeiT): ``T = prefix + h * w`` where ``(h, w)`` is a
  patch grid and ``prefix`` counts the class, distillation and register tokens that come first
  (at most :data:`MAX_PREFIX`).

The grids are the spatial sizes of the feature maps the graph computes (shape inference; for a
convolution on the input whose sizes are unknown, ``floor((H + pads - k) / stride) + 1`` from its
attributes, the patch embedding of a ViT) and their repeated halvings (the patch merging of
hierarchical transformers). A token layer is seen as a map by dropping the prefix and reshaping
the rest row by row to ``[N, C, h, w]``: pytorch-grad-cam's hand-written ``reshape_transform``
(``tensor[:, 1:, :].reshape(N, h, w, C)`` then channels first), found automatically.

Anything else — an attention map ``[N, heads, T, T]``, queries ``[N, heads, T, head size]``,
Swin's window batches ``[N * windows, ...]`` — has no place in the image, and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import LayerError, OptionError
from .layouts import _CHANNEL_FIRST_OPS, graph_index, layer_layout, to_nchw

#: Most tokens that may precede the patch tokens (class, distillation, registers).
MAX_PREFIX = 16


@dataclass(frozen=True)
class LayerView:
    """How a layer's tensor becomes ``[N, C, h, w]``.

    Attributes:
        layout: ``"NCHW"``, ``"NHWC"`` (any order of those letters) for a feature map, ``"NTC"``
            for a token sequence.
        grid: ``(h, w)`` of a token sequence's patch tokens (``None`` for feature maps).
        prefix: tokens before the patch tokens (class, distillation, registers), dropped.
    """

    layout: str
    grid: tuple[int, int] | None = None
    prefix: int = 0

    def to_nchw(self, array: np.ndarray) -> np.ndarray:
        """The layer's (N, ...) values as (N, C, h, w)."""
        if self.layout != "NTC":
            return to_nchw(array, self.layout)
        n, _, c = array.shape
        h, w = self.grid
        return np.ascontiguousarray(array[:, self.prefix:, :].reshape(n, h, w, c).transpose(0, 3, 1, 2))


def batch_like(model, dim) -> bool:
    """Whether a leading dim is the batch (not ``16*batch`` windows, not a fixed other size)."""
    if dim is None:
        return True
    if isinstance(dim, str):
        return not any(ch in dim for ch in "*+-/")
    batch = model.input.batch
    return isinstance(batch, int) and dim == batch


def _ints(shape) -> bool:
    return all(isinstance(d, (int, np.integer)) and d > 0 for d in shape)


def _conv_grid(node, size) -> tuple[int, int] | None:
    """Output (H, W) of a 2-D Conv on an input of spatial ``size``, from its attributes."""
    att = {a.name: a for a in node.attribute}
    kernel = list(att["kernel_shape"].ints) if "kernel_shape" in att else None
    if not kernel or len(kernel) != 2:
        return None
    strides = list(att["strides"].ints) if "strides" in att else [1, 1]
    dil = list(att["dilations"].ints) if "dilations" in att else [1, 1]
    pads = list(att["pads"].ints) if "pads" in att else [0, 0, 0, 0]
    if "auto_pad" in att and att["auto_pad"].s not in (b"", b"NOTSET", b"VALID"):
        return tuple(-(-s // st) for s, st in zip(size, strides))
    return tuple((s + pads[i] + pads[i + 2] - dil[i] * (kernel[i] - 1) - 1) // strides[i] + 1
                 for i, s in enumerate(size))


def known_grids(model) -> list[tuple[int, int]]:
    """The spatial grids of the graph: its feature maps' (H, W) and their repeated halvings."""
    cached = model.__dict__.get("_onnxviz_grids")
    if cached is not None:
        return cached
    idx = graph_index(model)
    grids: set[tuple[int, int]] = set()
    for tensor, lay in idx.layouts.items():
        shape = model.shape_of(tensor)
        if len(shape) == 4 and _ints(shape[1:]):
            grids.add((int(shape[lay.index("H")]), int(shape[lay.index("W")])))
    for node in model.proto.graph.node:
        if node.op_type not in _CHANNEL_FIRST_OPS:
            continue
        shape = model.shape_of(node.output[0])
        if len(shape) == 4 and _ints(shape[2:]):
            grids.add((int(shape[2]), int(shape[3])))
        elif node.op_type == "Conv" and node.input[0] == model.input.name and model.input.layout == "NCHW":
            g = _conv_grid(node, model.input.size)
            if g and min(g) > 0:
                grids.add(g)
    for h, w in list(grids):
        while h * w > 1:
            h, w = (h + 1) // 2, (w + 1) // 2
            grids.add((h, w))
    out = sorted(grids, key=lambda g: -g[0] * g[1])
    model.__dict__["_onnxviz_grids"] = out
    return out


def token_grid(model, shape) -> tuple[tuple[int, int], int] | None:
    """``((h, w), prefix)`` when ``shape`` is a token sequence ``[N, T, C]`` on a grid, else None."""
    if len(shape) != 3 or not _ints(shape[1:]) or not batch_like(model, shape[0]):
        return None
    t, c = int(shape[1]), int(shape[2])
    if t == c:  # a token-by-token matrix (attention), not features per token
        return None
    return sequence_grid(model, t)


def sequence_grid(model, tokens: int) -> tuple[tuple[int, int], int] | None:
    """``((h, w), prefix)`` of a sequence of ``tokens`` tokens: the grid leaving the fewest
    prefix tokens (at most :data:`MAX_PREFIX`), or None."""
    fits = [(tokens - h * w, (h, w)) for h, w in known_grids(model)
            if h * w > 1 and 0 <= tokens - h * w <= MAX_PREFIX]
    if not fits:
        return None
    prefix, grid = min(fits)
    return grid, prefix


def layer_view(model, layer) -> LayerView | None:
    """How ``layer`` maps onto the image, or None when it does not (see the module docstring)."""
    shape = tuple(layer.shape or model.shape_of(layer.tensor))
    if len(shape) == 3:
        found = token_grid(model, shape)
        return None if found is None else LayerView("NTC", found[0], found[1])
    if len(shape) != 4 or not batch_like(model, shape[0]):
        return None
    placed = graph_index(model).layouts.get(layer.tensor)
    lay = layer_layout(model, layer)
    if placed == lay:
        return LayerView(lay)
    hw = (shape[lay.index("H")], shape[lay.index("W")])
    return LayerView(lay) if hw in known_grids(model) else None


def with_grids(model, layers: list) -> list:
    """``layers`` with ``grid`` and ``prefix`` filled for the token sequences."""
    out = []
    for lay in layers:
        if len(lay.shape) == 3:
            found = token_grid(model, lay.shape)
            if found is None:
                continue
            lay = replace(lay, grid=found[0], prefix=found[1])
        out.append(lay)
    return out


def map_layers(model) -> list:
    """Feature maps with a spatial extent and token sequences on the way to the score, in order."""
    before = graph_index(model).ancestors(model.score_output)
    out = []
    for layer in model.layers():
        if layer.tensor == model.input.name or layer.tensor not in before:
            continue
        view = layer_view(model, layer)
        if view is None:
            continue
        if view.layout != "NTC":
            shape = layer.shape
            if shape[view.layout.index("H")] == 1 and shape[view.layout.index("W")] == 1:
                continue
        out.append(layer)
    return out


def attention_softmaxes(model) -> list[str]:
    """Outputs of ``Softmax`` nodes shaped ``[N, heads, T, T]`` (attention), in graph order."""
    out = []
    for node in model.proto.graph.node:
        if node.op_type != "Softmax":
            continue
        shape = model.shape_of(node.output[0])
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        if len(shape) == 4 and _ints(shape[2:]) and shape[2] == shape[3] and axis in (-1, 3):
            out.append(node.output[0])
    return out


def default_map_layer(model):
    """The layer a CAM method maps by default.

    A model whose tokens carry a class (or distillation, register) token and that has attention
    gets the normalised input of its last attention (timm ``blocks[-1].norm1``, pytorch-grad-cam's
    convention for ViT): after that attention only the class token reaches the score, so later
    patch tokens have zero gradient. Any other model gets its last map before the score (MATLAB
    ``gradCAM``'s and tf-keras-vis's choice; the final norm of a Swin).
    """
    layers = map_layers(model)
    if not layers:
        raise OptionError(
            "this model has no feature map or token sequence on a patch grid before its score, so a "
            "layer-based method has nothing to map; use a saliency, perturbation or attention method")
    last = layers[-1]
    soft = attention_softmaxes(model)
    if last.prefix and soft:
        idx = graph_index(model)
        feeding = idx.ancestors(soft[-1])
        tokens = [ly for ly in layers if ly.grid and ly.tensor in feeding]
        width = tokens[-1].shape[2] if tokens else None
        normed = [ly for ly in tokens if ly.op_type == "LayerNormalization"]
        same = [ly for ly in tokens if ly.shape[2] == width]
        pick = normed or same
        if pick:
            return pick[-1]
    return last


def resolve_map_layer(model, layer):
    """``layer`` (a name, a Layer, or None for the default) as a Layer that maps onto the image;
    the model's input name gives :func:`input_layer`.

    Raises:
        LayerError: an unknown name (with the close matches).
        OptionError: a tensor with no place in the image (an attention map, queries, windows).
    """
    if layer is None:
        return default_map_layer(model)
    if layer == model.input.name or getattr(layer, "tensor", None) == model.input.name:
        return input_layer(model)
    found = model.layer(layer) if isinstance(layer, str) else layer
    if layer_view(model, found) is None:
        shape = "x".join(str(d) for d in (found.shape or model.shape_of(found.tensor)))
        known = [ly.name for ly in map_layers(model)]
        raise OptionError(
            f"layer {found.name!r} ({shape}, {found.op_type}) is neither a feature map nor a token "
            f"sequence on the patch grid (e.g. a tensor inside attention), so it has no place in the "
            f"image to map; choose one of: {', '.join(known[-8:]) or 'none'}")
    return found


def input_layer(model):
    """The model's input as a layer: a CAM on the input tensor itself (Captum's ``LayerGradCam``
    allows it), in the input's layout.

    Raises:
        OptionError: a flattened input (MATLAB's ``[1, 1, 1, h*w]``), which is no map.
    """
    from .layers import Layer

    name = model.input.name
    if getattr(model.input, "flat_size", None):
        raise OptionError(f"the input {name!r} is flattened ({model.input.flat_size}), so it is "
                          "no map to draw on; choose a layer from model.layers()")
    return Layer(name=name, tensor=name, op_type="Input", shape=tuple(model.shape_of(name)))


def candidate_layers(model) -> list:
    """Maps on the way to the score (feature maps with a spatial extent, token sequences on a
    patch grid), in graph order; see :func:`map_layers`."""
    return map_layers(model)


def default_layer(model):
    """The default layer of the CAM family (:func:`default_map_layer`): the last map before the
    score, or a ViT's last attention input."""
    return default_map_layer(model)


def resolve_layer(model, layer):
    """``layer`` (a name, a Layer, or ``None`` for the default) as a Layer with a 4-D tensor."""
    if layer is None:
        return default_layer(model)
    if not isinstance(layer, str):
        return layer
    found = model.layer(layer)  # raises LayerError with close matches
    if len(list(found.shape or [])) != 4:
        known = [c.name for c in candidate_layers(model)]
        raise LayerError(layer, known, what="4-D layer")
    return found
