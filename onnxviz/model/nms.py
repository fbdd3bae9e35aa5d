"""Graphs that end in ``NonMaxSuppression``: the ``boxes`` detector layout.

torchvision detection and SSD exports give post-NMS tensors (boxes ``[K, 4]``, labels, scores, a
batch index): K changes with the image, and the selection itself has no gradient. What NMS reads
has both a fixed size and gradients: per-anchor boxes ``[N, A, 4]`` and class scores
``[N, C, A]`` (ONNX's NonMaxSuppression inputs). :func:`add_head` joins them into one tensor
``[N, 4 + C, A]`` in the ``yolov8`` form (``cx, cy, w, h`` then the class scores), which the
model then explains, decodes and draws like any raw head; :func:`selected` reads which anchors
and classes the graph's own NMS keeps, so ``predict`` gives the detections the graph gives.

The boxes NMS reads: with ``center_point_box=1``, ``cx, cy, w, h``; with ``0`` (the default),
two opposite corners, read as ``x0, y0, x1, y1``, the order torch exporters give
(``torchvision.ops.nms`` and ultralytics feed xyxy; NMS's answer does not depend on it). The
ONNX specification's own order is ``y0, x0, y1, x1`` (TensorFlow exports): there the explained
boxes come out transposed, the scores and selection are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ModelError

#: The name of the head :func:`add_head` adds (a graph output of the loaded model).
HEAD = "onnxviz_nms_head"


@dataclass(frozen=True)
class NMSHead:
    """Where a ``boxes`` model's explained head comes from.

    Attributes:
        boxes: the tensor of per-anchor boxes NMS reads, ``[N, A, 4]``.
        scores: the tensor of per-anchor class scores NMS reads, ``[N, C, A]``.
        selected: NMS's output ``selected_indices``, ``[M, 3]`` rows ``(image, class, anchor)``.
        node: the NonMaxSuppression node's name.
        head: the added head ``[N, 4 + C, A]`` (:data:`HEAD`).
    """

    boxes: str
    scores: str
    selected: str
    node: str
    head: str = HEAD


def find(proto: onnx.ModelProto) -> onnx.NodeProto | None:
    """The graph's NonMaxSuppression node (the last one when there are several), or None."""
    found = [n for n in proto.graph.node if n.op_type == "NonMaxSuppression"]
    return found[-1] if found else None


def add_head(proto: onnx.ModelProto, node: onnx.NodeProto) -> NMSHead:
    """Add :data:`HEAD` ``[N, 4 + C, A]`` (``cx, cy, w, h``, then the C class scores, per anchor)
    to ``proto`` as a graph output, computed from the inputs of NMS ``node``.

    Raises:
        ModelError: NMS reads its boxes or scores from nowhere the graph computes.
    """
    if len(node.input) < 2 or not node.input[0] or not node.input[1]:
        raise ModelError(f"NonMaxSuppression node {node.name!r} has no boxes and scores inputs")
    boxes, scores = node.input[0], node.input[1]
    centre = next((a.i for a in node.attribute if a.name == "center_point_box"), 0)
    p = f"{HEAD}/"
    nodes = []
    xywh = boxes
    if not centre:  # two corners x0, y0, x1, y1 -> cx, cy, w, h: boxes @ M
        m = np.array([[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]],
                     np.float32)
        proto.graph.initializer.append(numpy_helper.from_array(m, p + "corners_to_centre"))
        xywh = p + "xywh"
        nodes.append(helper.make_node("MatMul", [boxes, p + "corners_to_centre"], [xywh],
                                      name=p + "MatMul"))
    nodes += [
        helper.make_node("Transpose", [xywh], [p + "rows"], perm=[0, 2, 1], name=p + "Transpose"),
        helper.make_node("Concat", [p + "rows", scores], [HEAD], axis=1, name=p + "Concat"),
    ]
    proto.graph.node.extend(nodes)
    proto.graph.output.append(helper.make_tensor_value_info(HEAD, TensorProto.FLOAT, None))
    return NMSHead(boxes, scores, node.output[0], node.name or node.output[0])


def prepare(proto: onnx.ModelProto, task: str | None, layout: str | None,
            output: str | None) -> NMSHead | None:
    """The ``boxes`` layout's head, added to ``proto``, when the model is one: the graph has a
    NonMaxSuppression node, and neither the arguments nor the file's metadata say otherwise
    (another task or layout, or an ``output`` to explain). None for every other model.

    Raises:
        ModelError: ``layout="boxes"`` for a graph without NonMaxSuppression.
    """
    from .task import LAYOUT_KEY, TASK_KEY

    meta = {q.key: q.value for q in proto.metadata_props}
    task = meta.get(TASK_KEY) if task in (None, "auto") else task
    layout = layout or meta.get(LAYOUT_KEY)
    node = find(proto)
    if layout == "boxes" and node is None:
        raise ModelError("layout 'boxes' explains on the tensors a graph's NonMaxSuppression "
                         "reads, and this graph has none: give the raw head with output= and "
                         "layout= yolov8 or yolov5 (CLI --output, --layout)")
    if node is None or output is not None or task not in (None, "detect") or \
            layout not in (None, "boxes"):
        return None
    if any(o.name == HEAD for o in proto.graph.output):
        raise ModelError(f"the graph already has an output named {HEAD!r}")
    return add_head(proto, node)


def selected(rows: np.ndarray, image: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(anchors, classes)`` that NMS kept for ``image``, from its ``selected_indices`` rows
    ``(image, class, anchor)``; a padded row (negative index) is dropped."""
    rows = np.asarray(rows, np.int64).reshape(-1, 3)
    rows = rows[(rows[:, 0] == image) & (rows[:, 1] >= 0) & (rows[:, 2] >= 0)]
    return rows[:, 2].copy(), rows[:, 1].copy()
