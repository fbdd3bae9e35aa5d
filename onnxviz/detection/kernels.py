"""The compiled loops of detection: greedy NMS and D-RISE's mask weights.

- :func:`greedy` is the suppression loop of :func:`onnxviz.detection.boxes.nms`: a pair's IoU is
  computed only when both boxes are still candidates of one class, and the loop stops at the
  ``max_detections``-th kept box (no (M, M) matrix: a YOLO head at 640 px has 8,400 anchors).
- :func:`drise_max` is :func:`onnxviz.detection.layouts.drise_weights` for a batch of masked
  images, every anchor and target in one pass (no (K, n, A) temporaries: D-RISE weighs every
  batch of masks, and the NumPy form cost more than a small detector's forward pass).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def greedy(xyxy, cls, iou_threshold, max_detections):  # pragma: no cover - compiled
    """Indices (into the rows, sorted best first) of the rows greedy per-class NMS keeps: a row
    is dropped when a kept row of its class, earlier in the order, overlaps it by more than
    ``iou_threshold``. Rows: (M, 4) float64 xyxy and (M,) int64 classes."""
    m = xyxy.shape[0]
    alive = np.ones(m, np.bool_)
    kept = np.empty(min(m, max_detections), np.int64)
    n = 0
    for i in range(m):
        if not alive[i]:
            continue
        if n == max_detections:
            break
        kept[n] = i
        n += 1
        ax0, ay0, ax1, ay1 = xyxy[i, 0], xyxy[i, 1], xyxy[i, 2], xyxy[i, 3]
        area_a = max(ax1 - ax0, 0.0) * max(ay1 - ay0, 0.0)
        for j in range(i + 1, m):
            if not alive[j] or cls[j] != cls[i]:
                continue
            w = min(ax1, xyxy[j, 2]) - max(ax0, xyxy[j, 0])
            h = min(ay1, xyxy[j, 3]) - max(ay0, xyxy[j, 1])
            inter = max(w, 0.0) * max(h, 0.0)
            area_b = max(xyxy[j, 2] - xyxy[j, 0], 0.0) * max(xyxy[j, 3] - xyxy[j, 1], 0.0)
            union = area_a + area_b - inter
            if union > 0 and inter / union > iou_threshold:
                alive[j] = False
    return kept[:n]


@njit(nogil=True, cache=True)
def drise_max(box, obj, probs, targets, classes):  # pragma: no cover - compiled
    """(n, K) float64 ``max_a IoU(target_k, box_a) * obj_a * probs_a[c_k] / |probs_a|``.

    Args:
        box: (n, A, 4) float32 ``cx, cy, w, h`` (any strides: views of the raw head).
        obj: (n, A) float32 objectness.
        probs: (n, A, C) float32 class probabilities.
        targets: (K, 4) float64 xyxy target boxes.
        classes: (K,) int64 target classes.
    """
    n, a_count = obj.shape
    k_count = targets.shape[0]
    out = np.full((n, k_count), -np.inf)
    t_area = np.empty(k_count)
    for k in range(k_count):
        w = max(targets[k, 2] - targets[k, 0], 0.0)
        t_area[k] = w * max(targets[k, 3] - targets[k, 1], 0.0)
    half = np.float32(0.5)
    for i in range(n):
        for a in range(a_count):
            hw, hh = box[i, a, 2] * half, box[i, a, 3] * half
            x0 = np.float64(np.float32(box[i, a, 0] - hw))  # corners in float32, as decode's
            y0 = np.float64(np.float32(box[i, a, 1] - hh))
            x1 = np.float64(np.float32(box[i, a, 0] + hw))
            y1 = np.float64(np.float32(box[i, a, 1] + hh))
            area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
            norm = 0.0
            for c in range(probs.shape[2]):
                norm += np.float64(probs[i, a, c]) ** 2
            scale = np.float64(obj[i, a]) / np.sqrt(norm) if norm > 0 else 0.0
            for k in range(k_count):
                v = 0.0  # no overlap, an empty union or no class scores: a weight of 0
                w = min(x1, targets[k, 2]) - max(x0, targets[k, 0])
                h = min(y1, targets[k, 3]) - max(y0, targets[k, 1])
                inter = max(w, 0.0) * max(h, 0.0)
                union = area + t_area[k] - inter
                if inter > 0 and union > 0:
                    v = inter / union * scale * np.float64(probs[i, a, classes[k]])
                if v > out[i, k]:
                    out[i, k] = v
    return out
