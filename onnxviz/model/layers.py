"""Layers users recognise: friendly names for the 4-D activations of a graph.

Exporters keep the framework's layer names in node names, each in its own way:

- PyTorch TorchScript exporter (torch >= 1.13): ``/layer1/layer1.0/conv1/Conv`` ->
  ``layer1.0.conv1``;
- PyTorch dynamo exporter: node metadata ``pkg.torch.onnx.name_scopes`` -> the module path;
- tf2onnx / Keras: ``sequential/conv2d/BiasAdd`` -> ``conv2d`` (model name and TF op dropped);
- MATLAB: node names are the layer names (``conv_1``, ``relu_1``);
- anything else (old PyTorch ``Conv_0``): the node name, else the output tensor name.

When several nodes share a friendly name (Conv + Relu inside one Keras ``Conv2D`` layer), the
last one in graph order (the layer's output) gets the plain name and the others get
``name/OpType``. Every layer is also reachable by its tensor name and node name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import onnx

from ..errors import LayerError

_TF_WRAPPERS = {"StatefulPartitionedCall", "PartitionedCall"}
_TF2ONNX_SUFFIX = re.compile(r"__\d+$")


@dataclass(frozen=True)
class Layer:
    """A candidate layer.

    Attributes:
        name: the friendly name (framework layer name or module path where the exporter kept it).
        tensor: the ONNX tensor it names (a node output).
        op_type: the op producing it.
        shape: its inferred shape (ints, symbol names or None), batch first.
        aliases: every other name that selects it (tensor name, node name, variants).
        grad_reachable: whether gradients of the score reach it (every op between has a gradient
            rule); None unless asked for with ``Model.layers(grad=True)``.
        grid: for a token sequence ``[N, T, C]`` (vision transformers), the ``(h, w)`` patch grid
            of its tokens after the first ``prefix``; None for 4-D layers.
        prefix: tokens before the patch tokens (class, distillation, register tokens).
    """

    name: str
    tensor: str
    op_type: str
    shape: tuple = ()
    aliases: tuple[str, ...] = field(default=(), compare=False)
    grad_reachable: bool | None = field(default=None, compare=False)
    grid: tuple[int, int] | None = field(default=None, compare=False)
    prefix: int = field(default=0, compare=False)

    @property
    def is_4d(self) -> bool:
        return len(self.shape) == 4


def _pytorch_path(node: onnx.NodeProto) -> str | None:
    meta = {p.key: p.value for p in node.metadata_props}
    scopes = meta.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            # the last scope is the op's own name (conv2d, relu_1), not a module
            parts = [p for p in ast.literal_eval(scopes)[:-1] if p]
        except (ValueError, SyntaxError, TypeError):
            parts = []
        if parts:
            return _join_module_path(parts)
    if node.name.startswith("/"):
        parts = [p for p in node.name.split("/") if p][:-1]
        if parts:
            return _join_module_path(parts)
    return None


def _join_module_path(parts: list[str]) -> str:
    """['layer1', 'layer1.0', 'conv1'] -> 'layer1.0.conv1' (scopes repeat their parents' path);
    ['layers', 'layers.3', 'blocks', 'blocks.1', 'norm1'] -> 'layers.3.blocks.1.norm1' (a
    Sequential's child scope repeats only the Sequential's own name, as in timm's Swin)."""
    path: list[str] = []
    for p in parts:
        prefix = ".".join(path)
        if path and (p == prefix or p.startswith(prefix + ".")):
            path = p.split(".")
        elif path and p.startswith(path[-1] + "."):
            path = path[:-1] + p.split(".")
        else:
            path.extend(p.split("."))
    return ".".join(path)


def _tf_parts(node: onnx.NodeProto) -> list[str]:
    """Name scopes of a tf2onnx node without wrappers: [model, layer, ..., tf_op]."""
    return [p for p in node.name.split("/") if p and p not in _TF_WRAPPERS]


_SUFFIX = re.compile(r"_\d+$")


def _keras3_suffixed(proto: onnx.ModelProto) -> bool:
    """Keras 3 exports add a ``_N`` suffix to every scope (``mynet_1/conv_a_1/convolution``; a
    layer already called ``re_lu_1`` becomes ``re_lu_1_2``)."""
    scoped = [parts for parts in map(_tf_parts, proto.graph.node) if len(parts) >= 3]
    return bool(scoped) and all(_SUFFIX.search(p[0]) and _SUFFIX.search(p[1]) for p in scoped)


def _tf_path(node: onnx.NodeProto, keras3: bool = False) -> str | None:
    parts = _tf_parts(node)
    if len(parts) < 2:
        return None
    parts = parts[:-1]  # the TensorFlow op (BiasAdd, Relu, convolution, ...)
    if len(parts) > 1:
        parts = parts[1:]  # the model's own name (sequential, functional_1, ...)
    if keras3:
        parts = [_SUFFIX.sub("", p) for p in parts[:1]] + parts[1:]
    return "/".join(parts)


def friendly(node: onnx.NodeProto, producer: str, keras3: bool = False) -> str:
    """The friendly name of ``node`` for models written by ``producer``.

    ``keras3``: the graph comes from Keras 3's exporter, whose scopes carry a ``_1`` suffix.
    """
    prod = producer.lower()
    name = None
    if "pytorch" in prod or node.name.startswith("/") or any(
            p.key.startswith("pkg.torch") for p in node.metadata_props):
        name = _pytorch_path(node)
    elif "tf2onnx" in prod or "keras" in prod or "tensorflow" in prod:
        name = _tf_path(node, keras3)
    return name or node.name or node.output[0]


def collect(proto: onnx.ModelProto, shapes: dict[str, tuple],
            all_tensors: bool = False, keep=None) -> list[Layer]:
    """Layers of ``proto``: every node output with a 4-D shape (all outputs if ``all_tensors``).

    Args:
        proto: the model, in graph order.
        shapes: tensor name -> shape (from shape inference).
        all_tensors: include outputs of any rank (used to resolve names of non-4-D tensors).
        keep: ``keep(shape) -> bool`` admits other shapes too (token sequences).
    """
    producer = proto.producer_name or ""
    keras3 = "tf2onnx" in producer.lower() and _keras3_suffixed(proto)
    rows = []
    for node in proto.graph.node:
        for k, out in enumerate(node.output):
            if not out:
                continue
            shape = shapes.get(out)
            if not all_tensors and (shape is None or len(shape) != 4) and not (
                    shape is not None and keep is not None and keep(shape)):
                continue
            base = friendly(node, producer, keras3)
            if k:
                base = f"{base}:{k}"
            rows.append((base, out, node))
    # the last node of a group that is not a layout Transpose takes the plain name
    owner: dict[str, int] = {}
    for i, (base, _, node) in enumerate(rows):
        if node.op_type != "Transpose" or base not in owner:
            owner[base] = i
    layers, taken = [], set()
    for i, (base, out, node) in enumerate(rows):
        name = base if owner[base] == i else f"{base}/{node.op_type}"
        if name in taken:
            name = node.name or out
        if name in taken:
            name = out
        taken.add(name)
        names = (out, node.name, _strip_tf(out), base.split("/")[0] if "/" in base else "")
        aliases = tuple(dict.fromkeys(a for a in names if a and a != name))
        layers.append(Layer(name, out, node.op_type, tuple(shapes.get(out) or ()), aliases))
    return layers


def _strip_tf(tensor: str) -> str:
    """``sequential/conv2d/Relu:0`` -> ``sequential/conv2d/Relu`` (TF tensor names end in :0)."""
    return tensor[:-2] if tensor.endswith(":0") else ""


def find(layers: list[Layer], name: str, extra: list[Layer] = ()) -> Layer:
    """The layer called ``name`` (friendly name, alias, tensor or node name).

    ``extra`` are non-4-D tensors that may also be selected by exact name.

    Raises:
        LayerError: unknown name; the message lists the closest layer names.
    """
    for pool in (layers, extra):
        for layer in pool:
            if layer.name == name:
                return layer
        for layer in reversed(pool):  # a shared alias means the layer's output: its last node
            if name in layer.aliases:
                return layer
    lowered = [lay for lay in layers if lay.name.lower() == str(name).lower()]
    if len(lowered) == 1:
        return lowered[0]
    raise LayerError(str(name), [lay.name for lay in layers])
