"""Where a layer keeps its channels (the default layer a layer-based method looks at is chosen in
:mod:`.tokens`: the last map with a spatial extent on the way to the score, as MATLAB's
``gradCAM`` and tf-keras-vis pick it). Layouts are tracked per tensor: ONNX
convolutions and pools are always channel-first, Keras/tf2onnx graphs start channel-last and move
between layouts with ``Transpose`` nodes, so the layout of each tensor is propagated from the model
input through the graph (with a shape-based guess where the walk cannot tell).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import onnx
from onnx import numpy_helper

#: Ops whose 4-D output is channel-first by the ONNX specification.
_CHANNEL_FIRST_OPS = frozenset({
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool",
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "BatchNormalization",
    "InstanceNormalization", "LRN", "DepthToSpace", "SpaceToDepth", "MaxRoiPool",
})

#: Ops that only pass a tensor along; used when walking a classifier head.
PASS_THROUGH = frozenset({"Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Cast"})


@dataclass
class GraphIndex:
    """Producers, consumers, constants and per-tensor layouts of a model's graph."""

    proto: onnx.ModelProto
    input_name: str
    input_layout: str

    @cached_property
    def producer(self) -> dict[str, onnx.NodeProto]:
        return {o: n for n in self.proto.graph.node for o in n.output if o}

    @cached_property
    def consumers(self) -> dict[str, list[onnx.NodeProto]]:
        out: dict[str, list[onnx.NodeProto]] = {}
        for n in self.proto.graph.node:
            for i in n.input:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    @cached_property
    def constants(self) -> dict[str, onnx.TensorProto]:
        consts = {t.name: t for t in self.proto.graph.initializer}
        for n in self.proto.graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        consts[n.output[0]] = a.t
        return consts

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or ``Constant`` output, else ``None``."""
        t = self.constants.get(name)
        return None if t is None else numpy_helper.to_array(t)

    @cached_property
    def ranks(self) -> dict[str, int]:
        out = {}
        g = self.proto.graph
        for vi in [*g.input, *g.value_info, *g.output]:
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                out[vi.name] = len(vi.type.tensor_type.shape.dim)
        return out

    @cached_property
    def layouts(self) -> dict[str, str]:
        """Layout letters (``"NCHW"``, ``"NHWC"``...) of every 4-D tensor the walk can place."""
        lay = {self.input_name: self.input_layout}
        for n in self.proto.graph.node:
            out = None
            if n.op_type in _CHANNEL_FIRST_OPS:
                out = "NCHW"
            elif n.op_type == "Transpose":
                src = lay.get(n.input[0])
                perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
                if src and perm and len(perm) == 4:
                    out = "".join(src[p] for p in perm)
            elif n.op_type not in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "MatMul", "Gemm"):
                out = next((lay[i] for i in n.input if i in lay), None)
            if out:
                for o in n.output[:1]:
                    if self.ranks.get(o, 4) == 4:
                        lay[o] = out
        return lay

    def ancestors(self, tensor: str) -> set[str]:
        """Every tensor that ``tensor`` depends on (itself included)."""
        seen, stack = set(), [tensor]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            node = self.producer.get(t)
            if node is not None:
                stack.extend(i for i in node.input if i)
        return seen


def graph_index(model) -> GraphIndex:
    """The (cached) :class:`GraphIndex` of ``model``."""
    idx = getattr(model, "_onnxviz_graph_index", None)
    if idx is None or idx.proto is not model.proto:
        idx = GraphIndex(model.proto, model.input.name, model.input.layout)
        try:
            model._onnxviz_graph_index = idx
        except AttributeError:  # a model class with __slots__
            pass
    return idx


def layer_layout(model, layer) -> str:
    """``"NCHW"`` or ``"NHWC"`` (or another 4-letter order) for a layer's tensor."""
    lay = graph_index(model).layouts.get(layer.tensor)
    if lay and sorted(lay) == sorted("NCHW") and lay[0] == "N":
        return lay
    shape = list(layer.shape or [])
    if len(shape) == 4 and isinstance(shape[1], int) and shape[1] == shape[2] and shape[3] != shape[1]:
        return "NHWC"
    return "NCHW"


def to_nchw(array: np.ndarray, layout: str) -> np.ndarray:
    """Reorder a 4-D array from ``layout`` to ``"NCHW"``."""
    if layout == "NCHW":
        return array
    return np.transpose(array, [layout.index(c) for c in "NCHW"])


def from_nchw(array: np.ndarray, layout: str) -> np.ndarray:
    """Reorder a 4-D ``"NCHW"`` array to ``layout``."""
    if layout == "NCHW":
        return array
    return np.transpose(array, ["NCHW".index(c) for c in layout])


def _spatial(model, layer) -> tuple:
    shape = list(layer.shape or [])
    if len(shape) != 4:
        return ()
    lay = layer_layout(model, layer)
    return shape[lay.index("H")], shape[lay.index("W")]
