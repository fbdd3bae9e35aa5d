"""Detectors' outputs as boxes: layouts of raw heads, decoding, NMS, box targets (issue 22).

This room is pure geometry on arrays, below the model and the explainers: it turns a detector's
raw output tensor into candidate boxes and class scores (:mod:`.layouts`), keeps the detections
that survive non-maximum suppression (:mod:`.boxes`), maps boxes between the model's input and
the original photo, and matches a box a user gives to the candidate that explains it. The
explainers read the score of one detection from here, so every method explains the same number.
"""

from __future__ import annotations

from .boxes import Detections, box_iou, match_box, nms, scale_boxes
from .layouts import LAYOUTS, Candidates, decode, drise_weights, guess_layout

__all__ = ["LAYOUTS", "Candidates", "Detections", "box_iou", "decode", "drise_weights",
           "guess_layout",
           "match_box", "nms", "scale_boxes"]
