"""A method on a detector's boxes or a segmenter's regions, shaped like an explainer.

Every door (the library's :func:`onnxviz.explain`, ``onnxviz explain``, the report, the server,
the Ray engine, the gate) holds one object per method and calls ``explain(images, target)``. For a
classifier that is the method's :class:`~onnxviz.explainers.base.Explainer`, one Explanation per
image; for a detector or a segmenter it is a :class:`TargetExplainer`, which gives one Explanation
per box or region of each image, in image order (:mod:`onnxviz.explainers.boxes` does the work).
:func:`explainer` picks the one the model needs.
"""

from __future__ import annotations

from ..errors import OptionError

#: The detector options of every method (``predict``'s too): the NMS that picks the boxes.
NMS_OPTIONS = ("score_threshold", "iou_threshold", "max_detections")


class TargetExplainer:
    """Method ``cls`` with ``options`` on ``model``'s boxes (``task == "detect"``, after NMS with
    ``nms``) or regions (``task == "segment"``). Options are checked here, before any image."""

    def __init__(self, model, cls, options: dict, nms: dict | None = None):
        from .ranges import check_options

        _refuse(cls, model.task, nms)
        check_options(cls.name, options, cls.option_specs())
        if nms:
            from ..model.dense import check_nms

            check_nms(**nms)
        self.model, self.cls, self.options, self.nms = model, cls, dict(options), dict(nms or {})
        self.name, self.family = cls.name, cls.family

    def explain(self, images, target=None) -> list:
        """One Explanation per box or region of each image (``target``: see
        :func:`onnxviz.explain`), in image order."""
        from .boxes import explain_boxes, explain_regions

        if self.model.task == "segment":
            return explain_regions(self.cls, self.model, list(images), target, self.options)
        return explain_boxes(self.cls, self.model, list(images), target, self.options, self.nms)


def explainer(model, method: str, options: dict, nms: dict | None = None):
    """The object that explains ``model`` with ``method``: its Explainer for a classifier, a
    :class:`TargetExplainer` for a detector or a segmenter."""
    from .registry import get

    cls = get(method)
    if getattr(model, "task", "classify") == "classify":
        _refuse(cls, "classify", nms, tasks=False)  # the Explainer refuses its tasks itself,
        return cls(model, **options)                 # once its options are checked
    return TargetExplainer(model, cls, options, nms)


def _refuse(cls, task: str, nms: dict | None, tasks: bool = True) -> None:
    """A box method (ODAM; with ``tasks`` also D-RISE, whose ``tasks`` say so) or NMS options on
    a model that is not a detector: one line."""
    boxes_only = getattr(cls, "boxes_only", False) or (
        tasks and "detect" in cls.tasks and "classify" not in cls.tasks)
    if boxes_only and task != "detect":
        raise OptionError(f"{cls.name} explains the boxes of object detectors; this model is a "
                          f"{task} model")
    if nms and task != "detect":
        what = "classifier" if task == "classify" else f"{task} model"
        raise OptionError(f"{', '.join(sorted(nms))} are for detectors; this model is a {what}")


def view_of(model, e):
    """``(model, explanation)`` as a classifier sees them: for a box or a region explanation of
    ``model``, the one-target view of the score it explains (:class:`~onnxviz.explainers.boxes.
    BoxView` or :class:`~onnxviz.explainers.boxes.RegionView`) and a copy of ``e`` whose target
    is that view's class 0 (what the metrics perturb and score); otherwise both unchanged."""
    import dataclasses

    from .boxes import BoxView, RegionView

    if getattr(e, "box", None) is not None:
        view = BoxView(model, [e.extras["anchor"]], [e.target], [e.extras.get("box_label", "box")])
    elif getattr(e, "region", None) is not None:
        view = RegionView(model, [e.target], e.extras["region_mask"][None],
                          [e.extras.get("region_label", "region")])
    else:
        return model, e
    return view, dataclasses.replace(e, target=0, label=view.labels[0])


def box_mask(e, size):
    """The (H, W) booleans of ``e``'s box at the model's input ``size`` (H, W), or None."""
    import numpy as np

    box = getattr(e, "extras", {}).get("input_box") if getattr(e, "box", None) is not None \
        else None
    if box is None:
        return None
    h, w = size
    x0, y0, x1, y1 = box
    mask = np.zeros((h, w), bool)
    mask[max(0, int(np.floor(y0))):min(h, int(np.ceil(y1))),
         max(0, int(np.floor(x0))):min(w, int(np.ceil(x1)))] = True
    return mask
