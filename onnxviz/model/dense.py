"""Predictions of detectors and segmenters (``Model.predict`` when ``model.task`` is not
``classify``): boxes in the photo's pixels after NMS, or a class map and each class's area."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError


@dataclass
class Segmentation:
    """A segmenter's answer for one image.

    Attributes:
        class_map: int (H, W) class index per pixel, at the photo's size.
        areas: ``{label: fraction of the photo}`` for every class present, largest first.
        labels: the class names, by index.
    """

    class_map: np.ndarray
    areas: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)

    def records(self) -> list[dict]:
        """One JSON-ready dict per class present: ``label``, ``class``, ``area`` (a fraction)."""
        index = {name: k for k, name in enumerate(self.labels)}
        return [{"label": name, "class": index[name], "area": round(float(a), 6)}
                for name, a in self.areas.items()]


def _photos(images) -> list[np.ndarray]:
    from ..imageio import read_image

    items = images if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise OptionError("no images given")
    return [read_image(item, exact=True) for item in items]


def _inputs(model, photos) -> np.ndarray:
    from ..imageio import resize

    size = model.input.size
    return model.normalize(np.stack([resize(p, size) for p in photos]))


def check_nms(**nms) -> dict:
    """``score_threshold`` and ``iou_threshold`` in [0, 1], ``max_detections`` an integer >= 1
    (those given); a bad one is an :class:`OptionError`. Returns ``nms``."""
    for name, v in nms.items():
        if name == "max_detections":
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise OptionError(f"max_detections must be an integer >= 1, got {v!r}")
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise OptionError(f"{name} must be a number in [0, 1], got {v!r}")
    return nms


def predict(model, images, *, batch_size=None, score_threshold: float = 0.25,
            iou_threshold: float = 0.45, max_detections: int = 300):
    """:class:`~onnxviz.detection.Detections` (detectors) or :class:`Segmentation` (segmenters)
    per image: one for one image, a list for a list. Zero detections above the threshold is a
    normal answer (an empty ``Detections``)."""
    from ..detection.boxes import detections
    from ..detection.layouts import decode

    check_nms(score_threshold=score_threshold, iou_threshold=iou_threshold,
              max_detections=max_detections)
    single = not isinstance(images, (list, tuple))
    photos = _photos(images)
    x = _inputs(model, photos)
    opts = {"score_threshold": float(score_threshold), "iou_threshold": float(iou_threshold),
            "max_detections": max_detections}
    if model.task == "detect" and model.nms is not None:  # one image per run: NMS's own rows
        out = [detect_input(model, x[k:k + 1], photo.shape[:2], opts)[0]
               for k, photo in enumerate(photos)]
        return out[0] if single else out
    raw = model.run(x, [model.score_output], batch_size)[model.score_output]
    out = []
    for photo, r in zip(photos, raw):
        if model.task == "detect":
            out.append(detections(decode(r, model.layout), model.input.size, photo.shape[:2],
                                  model.label_of, **opts))
        else:
            out.append(_segmentation(model, r, photo.shape[:2]))
    return out[0] if single else out


def detect_input(model, x: np.ndarray, photo_size, nms_options: dict):
    """``(Detections, Candidates, head)`` of one preprocessed image ``x`` (batch of one) of a
    detector: onnxviz's NMS on the raw head, or for the ``boxes`` layout the anchors and classes
    the graph's own NonMaxSuppression keeps (:mod:`.nms`); ``head`` is the raw head itself."""
    from ..detection.boxes import detections
    from ..detection.layouts import decode
    from .nms import selected

    names = [model.score_output] + ([model.nms.selected] if model.nms is not None else [])
    got = model.run(x, names)
    head = got[model.score_output][0]
    cands = decode(head, model.layout)
    kept = None if model.nms is None else selected(got[model.nms.selected], 0)
    return detections(cands, model.input.size, photo_size, model.label_of, kept=kept,
                      **nms_options), cands, head


def _segmentation(model, logits: np.ndarray, size) -> Segmentation:
    import cv2

    classes = np.argmax(logits, axis=0).astype(np.int32)  # (h, w) at the output's resolution
    full = cv2.resize(classes, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)
    counts = np.bincount(full.ravel(), minlength=model.num_classes)
    order = np.argsort(-counts, kind="stable")
    labels = [model.label_of(k) for k in range(model.num_classes)]
    areas = {labels[k]: counts[k] / full.size for k in order if counts[k]}
    return Segmentation(full.astype(np.int64), areas, labels)
