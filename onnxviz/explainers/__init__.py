"""Explanation methods, one module per family, all reached through :func:`explain`."""

from __future__ import annotations

from ..errors import guard
from .base import Explainer, Explanation
from .registry import get, methods, register

__all__ = ["Explainer", "Explanation", "explain", "get", "methods", "register"]


@guard("explain")
def explain(model, images, method: str = "gradcam", target=None, **options):
    """Explain ``model``'s decision on ``images`` with ``method``.

    Args:
        model: an :class:`onnxviz.Model` (from :func:`onnxviz.load`).
        images: one image (HxWx3 uint8 array or a path) or a list of them.
        method: a name from ``onnxviz.METHODS``.
        target: class to explain per image: an index, a label, ``None`` for the top-1 class,
            or a list with one of those per image.
        **options: the method's keyword options (see ``onnxviz.explainers.get(method).options()``).

    Returns:
        One :class:`Explanation` for one image, a list for a list. A detector
        (``model.task == "detect"``) gives a list of one Explanation per explained box, in image
        order: ``target`` is None (every detection after NMS; ``score_threshold``,
        ``iou_threshold`` and ``max_detections`` may be given with the options), a detection's
        index, or ``{"box": [x0, y0, x1, y1], "label": name}`` in the photo's pixels
        (:mod:`onnxviz.explainers.boxes`).
    """
    from ..errors import OptionError
    from .dense import NMS_OPTIONS, explainer

    if not isinstance(method, str):
        raise OptionError(f"method must be a name from onnxviz.METHODS, got "
                          f"{type(method).__name__} {method!r}"[:200])
    cls = get(method)
    nms = {k: options.pop(k) for k in NMS_OPTIONS if k in options}
    known = cls.options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(
            f"method {method!r} has no option {', '.join(unknown)}; "
            f"its options: {', '.join(known) or 'none'}"
        )
    single = not isinstance(images, (list, tuple))
    batch = [images] if single else list(images)
    if not batch:
        raise OptionError("no images given")
    if single and isinstance(target, (list, tuple)):
        raise OptionError("one image was given but a list of targets")
    ex = explainer(model, method, options, nms)
    result = ex.explain(batch, target=target)
    if getattr(model, "task", "classify") != "classify":
        return result
    return result[0] if single else result
