"""Boxes: IoU, non-maximum suppression, the input <-> photo mapping, and matching a user's box.

Boxes are ``x0, y0, x1, y1`` float arrays (corners, not centres), as ultralytics' ``boxes.xyxy``
and supervision's ``Detections.xyxy`` hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError, TargetError
from .layouts import Candidates


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of two sets of xyxy boxes (0 for empty boxes)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(cands: Candidates, *, score_threshold: float = 0.25, iou_threshold: float = 0.45,
        max_detections: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Greedy per-class non-maximum suppression, as ultralytics' ``non_max_suppression`` with
    ``agnostic=False``: each anchor is a candidate for its best class when that class's score
    passes ``score_threshold``; within a class, a box overlapping a higher-scoring kept box by
    more than ``iou_threshold`` is dropped.

    Returns:
        ``(anchors, classes)``: int arrays of the kept candidates, best score first.
    """
    from .kernels import greedy

    cls = np.argmax(cands.scores, axis=1)
    conf = cands.scores[np.arange(len(cls)), cls]
    idx = np.flatnonzero(conf >= score_threshold)
    # best first; equal scores by class, then by anchor (the order per-class NMS keeps them in)
    idx = idx[np.lexsort((idx, cls[idx], -conf[idx]))]
    if max_detections <= 0 or not len(idx):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = greedy(np.ascontiguousarray(cands.xyxy[idx], np.float64),
                  np.ascontiguousarray(cls[idx], np.int64), float(iou_threshold),
                  int(max_detections))
    kept = idx[rows]
    return kept, cls[kept].astype(np.int64)


def scale_boxes(xyxy: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Boxes in an image of size ``src`` = (H, W) as boxes in the same image resized to ``dst``
    (onnxviz resizes a photo to the model's input on each axis, without letterbox)."""
    sy, sx = dst[0] / src[0], dst[1] / src[1]
    return (np.asarray(xyxy, np.float64) * np.array([sx, sy, sx, sy])).astype(np.float32)


@dataclass
class Detections:
    """The detections of one image, in the shape detection users hand to the next tool
    (supervision's ``Detections``: ``xyxy``, ``class_id``, ``confidence``; ultralytics'
    ``boxes.xyxy``, ``boxes.cls``, ``boxes.conf``).

    Attributes:
        xyxy: (K, 4) float32 boxes in the original photo's pixels.
        class_id: (K,) int class indices.
        confidence: (K,) float32 scores.
        labels: the K class names.
        anchor: (K,) int index of each detection's anchor in the raw head (what is explained).
        input_xyxy: (K, 4) the boxes in the model input's pixels.
    """

    xyxy: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    labels: list[str] = field(default_factory=list)
    anchor: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    input_xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    def __len__(self) -> int:
        return int(len(self.class_id))

    def records(self) -> list[dict]:
        """One JSON-ready dict per detection: ``box`` (original pixels), ``label``, ``class``,
        ``score``."""
        return [{"box": [round(float(v), 2) for v in self.xyxy[k]], "label": self.labels[k],
                 "class": int(self.class_id[k]), "score": float(self.confidence[k])}
                for k in range(len(self))]

    def to_supervision(self):
        """A ``supervision.Detections`` (the optional ``supervision`` package), class names in
        ``data["class_name"]``."""
        try:
            import supervision as sv
        except ImportError:
            from ..errors import OnnxvizError

            raise OnnxvizError("to_supervision needs the supervision package: "
                               "pip install supervision") from None
        return sv.Detections(xyxy=np.asarray(self.xyxy, np.float32),
                             class_id=np.asarray(self.class_id, int),
                             confidence=np.asarray(self.confidence, np.float32),
                             data={"class_name": np.asarray(self.labels, dtype=object)})


def detections(cands: Candidates, input_size, photo_size, label_of, *, kept=None,
               **nms_options) -> Detections:
    """:func:`nms` on one image's candidates, boxes mapped back to the photo's pixels.

    Args:
        kept: ``(anchors, classes)`` a graph's own NMS kept (the ``boxes`` layout), used instead
            of :func:`nms`: those passing ``score_threshold`` are kept, best first, at most
            ``max_detections`` (``iou_threshold`` is the graph's own).
    """
    if kept is None:
        anchors, classes = nms(cands, **nms_options)
    else:
        anchors, classes = kept_by_graph(cands, *kept, **nms_options)
    inside = cands.xyxy[anchors]
    return Detections(
        xyxy=scale_boxes(inside, input_size, photo_size), class_id=classes,
        confidence=cands.scores[anchors, classes].astype(np.float32),
        labels=[label_of(int(c)) for c in classes], anchor=anchors,
        input_xyxy=inside.astype(np.float32))


def kept_by_graph(cands: Candidates, anchors, classes, *, score_threshold: float = 0.25,
                  iou_threshold: float = 0.45,
                  max_detections: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The detections a graph's NMS kept (``anchors``, ``classes``) that score at least
    ``score_threshold``, best first, at most ``max_detections`` (``iou_threshold`` is unused:
    the graph has applied its own)."""
    anchors = np.asarray(anchors, np.int64).reshape(-1)
    classes = np.asarray(classes, np.int64).reshape(-1)
    if len(anchors) and (anchors.max() >= len(cands.xyxy) or classes.max() >= cands.num_classes):
        raise ModelError("NonMaxSuppression kept an anchor or class outside the head it reads")
    conf = cands.scores[anchors, classes]
    keep = np.flatnonzero(conf >= score_threshold)
    keep = keep[np.argsort(-conf[keep], kind="stable")][:max_detections]
    return anchors[keep], classes[keep]


def match_box(cands: Candidates, box_input: np.ndarray, cls: int) -> tuple[int, float]:
    """The anchor whose box best overlaps ``box_input`` (xyxy, model-input pixels) among those
    whose best class is ``cls`` (all anchors when none of those overlaps it), as pytorch-grad-cam's
    ``FasterRCNNBoxScoreTarget`` and D-RISE match a user's box. Returns ``(anchor, IoU)``.

    Raises:
        TargetError: the box is empty, or overlaps no candidate at all.
    """
    box = np.asarray(box_input, np.float64).reshape(4)
    if not (box[2] > box[0] and box[3] > box[1]):
        raise TargetError(f"box {box.tolist()} is empty: give x0, y0, x1, y1 with x1 > x0 and "
                          "y1 > y0")
    ious = box_iou(box, cands.xyxy)[0]
    same = (np.argmax(cands.scores, axis=1) == cls) & (ious > 0)
    pool = np.flatnonzero(same) if same.any() else np.arange(len(ious))
    best = int(pool[np.argmax(ious[pool])])
    if ious[best] <= 0:
        raise TargetError(f"box {box.tolist()} overlaps no box the detector proposes")
    return best, float(ious[best])
