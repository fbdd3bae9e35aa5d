"""The output layouts of detector heads, and their decoding into candidate boxes.

A raw detector head gives, per anchor (a grid cell of one feature level), a box and class scores;
non-maximum suppression then keeps a few of them. onnxviz explains a detection on the tensor
before NMS, where gradients exist, so it reads that tensor in one of these layouts:

- ``yolov8``: ``[N, 4 + C, A]``, rows ``cx, cy, w, h`` in input pixels, then C class scores
  (already sigmoid probabilities), no objectness. YOLOv8 and YOLO11 exports.
- ``yolov5``: ``[N, A, 5 + C]``, ``cx, cy, w, h``, objectness, C class scores; a candidate's
  confidence for class c is ``objectness x score_c`` (YOLOv5, YOLOv7, YOLOX-style exports).
- ``boxes``: a graph that ends in ``NonMaxSuppression`` and gives post-NMS tensors (boxes
  ``[K, 4]``, labels, scores, a batch index), as torchvision detection and SSD exports do. The
  loader (:mod:`onnxviz.model.nms`) explains on the two tensors NMS reads, boxes ``[N, A, 4]``
  and scores ``[N, C, A]``, joined into one head ``[N, 4 + C, A]`` read as ``yolov8`` reads its
  own; which anchors survive is the graph's NMS's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError

#: Layout name -> what it is (for the help, the docs and the refusal).
LAYOUTS = {
    "yolov8": "[N, 4+C, A]: cx, cy, w, h in input pixels, then C class scores, no objectness "
              "(YOLOv8, YOLO11)",
    "yolov5": "[N, A, 5+C]: cx, cy, w, h, objectness, then C class scores (YOLOv5, YOLOv7)",
    "boxes": "post-NMS boxes [K, 4], labels, scores (and a batch index) of a graph that ends in "
             "NonMaxSuppression (torchvision, SSD); explained on the boxes and scores NMS reads",
}


def head_form(layout: str) -> str:
    """The raw head form a layout's explained tensor has: ``boxes`` models are explained on a
    ``[N, 4 + C, A]`` head built from NMS's inputs, the ``yolov8`` form."""
    return "yolov8" if layout == "boxes" else layout


@dataclass
class Candidates:
    """Every anchor's box and scores for one image, before NMS.

    Attributes:
        xyxy: (A, 4) float32 boxes ``x0, y0, x1, y1`` in the model input's pixels.
        scores: (A, C) float32 class confidences (objectness included for ``yolov5``).
        objectness: (A,) float32 objectness; for a layout without it (``yolov8``), each
            candidate's best class score, which plays its part (D-RISE's ``O_j``).
        probs: (A, C) float32 class probabilities without objectness (D-RISE's ``P``).
    """

    xyxy: np.ndarray
    scores: np.ndarray
    objectness: np.ndarray
    probs: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.scores.shape[1])


def guess_layout(shape) -> str | None:
    """The layout of a raw head output of ``shape`` ``[N, a, b]`` (batch axis included), or None
    when the shape alone cannot tell. Anchors outnumber the box-and-class values in every
    exported head (8400 anchors for 84 values at 640 px), which fixes the axis order."""
    if len(shape) != 3:
        return None
    a, b = shape[1], shape[2]
    if not (isinstance(a, int) and isinstance(b, int)) or a <= 0 or b <= 0:
        return None
    if 5 <= a < b:
        return "yolov8"
    if 6 <= b < a:
        return "yolov5"
    return None


def check_layout(layout: str, shape) -> None:
    """Refuse a ``layout`` that an output of ``shape`` cannot have, in one line naming both."""
    if layout not in LAYOUTS:
        raise ModelError(f"unknown detector layout {layout!r}; known: "
                         + "; ".join(f"{k} ({v})" for k, v in LAYOUTS.items()))
    if len(shape) != 3:
        raise ModelError(f"layout {layout!r} needs a 3-D output [N, ., .], got shape "
                         f"{list(shape)}")
    form = head_form(layout)
    values = shape[1] if form == "yolov8" else shape[2]
    least = 5 if form == "yolov8" else 6
    if isinstance(values, int) and values < least:
        raise ModelError(f"layout {layout!r} reads {LAYOUTS[layout]}, but the output {list(shape)} "
                         f"has {values} values per anchor")


def decode(raw: np.ndarray, layout: str) -> Candidates:
    """One image's raw head output (no batch axis) as :class:`Candidates`.

    Args:
        raw: ``(4 + C, A)`` for ``yolov8`` (and ``boxes``' head), ``(A, 5 + C)`` for ``yolov5``.
        layout: a key of :data:`LAYOUTS`.
    """
    raw = np.asarray(raw, np.float32)
    check_layout(layout, (1, *raw.shape))
    if head_form(layout) == "yolov8":
        box, probs = raw[:4].T, raw[4:].T
        obj = probs.max(axis=1)  # no objectness: a candidate's best class score plays its part
        scores = probs
    else:
        box, obj, probs = raw[:, :4], raw[:, 4], raw[:, 5:]
        scores = probs * obj[:, None]
    cx, cy, w, h = box.T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return Candidates(np.ascontiguousarray(xyxy, np.float32),
                      np.ascontiguousarray(scores, np.float32),
                      np.ascontiguousarray(obj, np.float32),
                      np.ascontiguousarray(probs, np.float32))


def score_index(layout: str, anchor: int, cls: int, num_classes: int) -> tuple[int, ...]:
    """Where the class score of ``anchor`` for class ``cls`` sits in one image's raw output: the
    element a gradient method differentiates (for ``yolov5`` the class score; objectness
    multiplies it in :func:`decode`)."""
    if not 0 <= cls < num_classes:
        raise ModelError(f"class {cls} is outside the detector's {num_classes} classes")
    return (4 + cls, anchor) if head_form(layout) == "yolov8" else (anchor, 5 + cls)


#: What of a box a gradient method can explain (ODAM's ``box_output``): its class score, or one
#: of its coordinates in input pixels (centre, size, or a corner's x / y).
BOX_OUTPUTS = ("score", "cx", "cy", "w", "h", "x0", "y0", "x1", "y1")

#: Each coordinate as a combination of the head's ``cx, cy, w, h`` values (their index: 0-3).
_COORDS = {"cx": ((0, 1.0),), "cy": ((1, 1.0),), "w": ((2, 1.0),), "h": ((3, 1.0),),
           "x0": ((0, 1.0), (2, -0.5)), "y0": ((1, 1.0), (3, -0.5)),
           "x1": ((0, 1.0), (2, 0.5)), "y1": ((1, 1.0), (3, 0.5))}


def output_terms(layout: str, anchor: int, cls: int, num_classes: int,
                 output: str = "score") -> list[tuple[tuple[int, ...], float]]:
    """``output`` (a key of :data:`BOX_OUTPUTS`) of one detection as ``[(index, coefficient)]``
    over one image's raw head: the score's element (:func:`score_index`), or a coordinate's
    ``cx, cy, w, h`` elements (``x0 = cx - w / 2``: ODAM explains a box's coordinates as it
    explains its score, Zhao & Chan 2023)."""
    if output == "score":
        return [(score_index(layout, anchor, cls, num_classes), 1.0)]
    if output not in _COORDS:
        raise ModelError(f"unknown box output {output!r}; known: {', '.join(BOX_OUTPUTS)}")
    row = (lambda k: (k, anchor)) if head_form(layout) == "yolov8" else (lambda k: (anchor, k))
    return [(row(k), c) for k, c in _COORDS[output]]


def drise_weights(cands: Candidates, boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """D-RISE's weight of one masked image for each target detection (Petsiuk et al. 2021,
    eq. 2-3): ``max_j IoU(L_t, L_j) * O_j * cos(P_t, P_j)`` over the masked image's proposals
    ``j`` (every anchor: box ``L_j``, objectness ``O_j``, class probabilities ``P_j``), the target
    ``t`` being a box ``L_t`` with a one-hot class vector ``P_t``.

    Args:
        cands: the masked image's candidates.
        boxes: (K, 4) target boxes, xyxy in input pixels.
        classes: (K,) their classes.

    Returns:
        (K,) float64 weights.
    """
    from .boxes import box_iou

    iou = box_iou(boxes, cands.xyxy)  # (K, A)
    p = cands.probs.astype(np.float64)
    norm = np.sqrt((p * p).sum(axis=1))
    cos = np.where(norm > 0, p[:, np.asarray(classes, np.int64)].T / np.where(norm > 0, norm, 1),
                   0.0)  # (K, A): P_j[c_t] / |P_j|, the cosine with a one-hot P_t
    return (iou * cands.objectness[None, :].astype(np.float64) * cos).max(axis=1)


def drise_weights_batch(raws: np.ndarray, layout: str, boxes: np.ndarray,
                        classes: np.ndarray) -> np.ndarray:
    """:func:`drise_weights` for a batch of raw head outputs at once: (n, K) float64, in one
    compiled pass over the masked images, the anchors and the targets
    (:func:`onnxviz.detection.kernels.drise_max`; the per-image form costs more than a small
    detector's forward pass)."""
    from .kernels import drise_max

    raws = np.asarray(raws, np.float32)
    if head_form(layout) == "yolov8":
        box = raws[:, :4].transpose(0, 2, 1)  # (n, A, 4) views
        probs = raws[:, 4:].transpose(0, 2, 1)  # (n, A, C)
        obj = probs.max(axis=2)
    else:
        box, obj, probs = raws[:, :, :4], raws[:, :, 4], raws[:, :, 5:]
    return drise_max(box, np.ascontiguousarray(obj), probs,
                     np.ascontiguousarray(boxes, np.float64).reshape(-1, 4),
                     np.ascontiguousarray(classes, np.int64))
