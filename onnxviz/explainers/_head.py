"""Find a ``global average pooling -> dense`` classifier head and read its weights (for CAM)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import helper

from ..errors import OptionError
from ..model.layouts import PASS_THROUGH, GraphIndex

_HINT = "cam needs a global-average-pooling -> dense head; use gradcam, which works on any model"


@dataclass
class Head:
    """The pooled 4-D tensor and the dense weights (num_classes, channels) after the pooling."""

    tensor: str
    weights: np.ndarray


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _skip_back(idx: GraphIndex, tensor: str) -> str:
    """Walk back through ops that only reshape or pass a tensor along."""
    node = idx.producer.get(tensor)
    while node is not None and node.op_type in PASS_THROUGH:
        tensor = node.input[0]
        node = idx.producer.get(tensor)
    return tensor


def _dense(idx: GraphIndex, tensor: str):
    """(input tensor, weights (K, C)) of the dense layer producing ``tensor``, else raise."""
    node = idx.producer.get(tensor)
    if node is not None and node.op_type in ("Add", "Sum") and len(node.input) == 2:
        var = [i for i in node.input if idx.constant(i) is None]
        if len(var) == 1:  # bias
            node = idx.producer.get(_skip_back(idx, var[0]))
    if node is None:
        raise OptionError(f"{_HINT} (the score is a graph input)")
    w = idx.constant(node.input[1]) if len(node.input) > 1 else None
    if node.op_type == "Gemm" and w is not None and not _attr(node, "transA", 0):
        w = w if _attr(node, "transB", 0) else w.T
        return node.input[0], w * _attr(node, "alpha", 1.0)
    if node.op_type == "MatMul" and w is not None and w.ndim == 2:
        return node.input[0], w.T
    if node.op_type == "Conv" and w is not None and w.ndim == 4 and w.shape[2:] == (1, 1):
        if _attr(node, "group", 1) == 1:
            return node.input[0], w[:, :, 0, 0]
    raise OptionError(f"{_HINT} (the score comes from {node.op_type} node {node.name!r})")


def _pool_input(idx: GraphIndex, tensor: str) -> str:
    """The 4-D input of the global average pooling producing ``tensor``, else raise."""
    node = idx.producer.get(tensor)
    if node is not None and node.op_type == "GlobalAveragePool":
        return node.input[0]
    if node is not None and node.op_type == "ReduceMean":
        src = node.input[0]
        axes = _attr(node, "axes")
        if axes is None and len(node.input) > 1:
            axes = idx.constant(node.input[1])
        layout = idx.layouts.get(src, "NCHW")
        if axes is not None and sorted(int(a) % 4 for a in np.ravel(axes)) == sorted(
            layout.index(c) for c in "HW"
        ):
            return src
    what = "nothing" if node is None else f"{node.op_type} node {node.name!r}"
    raise OptionError(f"{_HINT} (the dense layer reads {what}, not a global average pooling)")


def gap_dense_head(model, idx: GraphIndex) -> Head:
    """The GAP -> dense head ending at ``model.score_output``.

    Raises:
        OptionError: the score is not a dense layer applied to globally average-pooled features.
    """
    cached = getattr(model, "_onnxviz_cam_head", None)
    if cached is not None:
        return cached
    dense_in, weights = _dense(idx, _skip_back(idx, model.score_output))
    pooled = _pool_input(idx, _skip_back(idx, dense_in))
    head = Head(tensor=pooled, weights=np.ascontiguousarray(weights, dtype=np.float32))
    try:
        model._onnxviz_cam_head = head
    except AttributeError:
        pass
    return head
