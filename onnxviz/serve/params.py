"""A request's ``parameters`` -> what to run: the method, its options, the targets, the outputs.

The method and its options go through the same code as the command line
(:func:`onnxviz.explainers.registry.get`, :func:`onnxviz.explainers.options.method_kwargs`), so a
name, a range or a type the CLI refuses is refused here with the same words, as a 400. JSON values
may be numbers, booleans, strings or lists (``"patch": [16, 16]`` is ``--patch 16,16``); ``null``
means the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError, TargetError
from ..explainers import options
from ..explainers.baselines import names_file
from .limits import REFUSED, check_options

#: What an explanation can carry besides its numbers: the coloured heatmap (PNG, model input
#: size), the overlay on the sent image (PNG, its size), the heatmap's float32 values.
OUTPUTS = ("heatmap_png", "overlay_png", "heatmap")
DEFAULT_OUTPUTS = ("heatmap_png", "overlay_png")

#: Keys of ``parameters`` that are not method options.
RESERVED = ("method", "target", "outputs", "top", "cmap")

#: A detector's options of ``predict`` and ``explain``: which detections count (after NMS).
NMS = ("score_threshold", "iou_threshold", "max_detections")


@dataclass(frozen=True)
class Job:
    """One request's explanation settings; requests with the same :attr:`key` share batches."""

    method: str
    kwargs: dict
    outputs: tuple[str, ...]
    cmap: str = "jet"

    @property
    def key(self) -> tuple:
        return (self.method, tuple(sorted((k, repr(v)) for k, v in self.kwargs.items())))


def parameters_of(body: dict) -> dict:
    """The request's ``parameters`` object ({} when absent)."""
    params = body.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise OptionError(f"'parameters' must be an object, got {type(params).__name__}")
    return params


def job_of(params: dict, methods: list[str], caps: dict, model=None) -> Job:
    """Validate ``params`` for an explanation.

    Args:
        params: the request's ``parameters``.
        methods: the methods this server explains with (``--method``); the first is the default.
        caps: the option caps (:mod:`onnxviz.serve.limits`).
        model: the model explained; a detector's NMS options (:data:`NMS`) join the method's.
    """
    nms = nms_of(params, model)
    params = {k: v for k, v in params.items() if k not in NMS}
    method = params.get("method") or methods[0]
    if not isinstance(method, str):
        raise OptionError(f"'method' must be a name, got {type(method).__name__}")
    options.registry().get(method)  # an unknown name lists the close ones
    if method not in methods:
        raise OptionError(f"method {method!r} is not served here; served: {', '.join(methods)} "
                          "(onnxviz serve --method)")
    given = {}
    for opt, value in params.items():
        if opt in RESERVED or value is None:
            continue
        if opt in REFUSED:
            raise OptionError(f"option {opt!r} cannot be set over HTTP: {REFUSED[opt]}")
        if opt in options.ARRAY_OR_VALUE and names_file(value):
            raise OptionError(f"option {opt!r} cannot name a file over HTTP, got {value!r}: "
                              "give a word or a number (files are for the command line)")
        given[opt] = _raw(opt, value)
    kwargs = options.method_kwargs(method, given, strict=True)
    check_options(method, kwargs, caps)
    return Job(method, {**kwargs, **nms}, outputs_of(params.get("outputs")),
               cmap_of(params.get("cmap")))


def cmap_of(value) -> str:
    """``cmap``: the colormap of the PNGs (``onnxviz explain --cmap``; default jet)."""
    from ..viz import COLORMAPS

    if value is None:
        return "jet"
    if value not in COLORMAPS:
        raise OptionError(f"unknown colormap {value!r}; choose from: {', '.join(COLORMAPS)}")
    return value


def nms_of(params: dict, model) -> dict:
    """A detector's ``score_threshold``, ``iou_threshold`` and ``max_detections`` (checked);
    refused for any other model."""
    given = {k: params[k] for k in NMS if params.get(k) is not None}
    if not given:
        return {}
    if getattr(model, "task", "classify") != "detect":
        raise OptionError(f"{', '.join(given)}: options of detectors; this model is a "
                          f"{getattr(model, 'task', 'classify')} model")
    for k, v in given.items():
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if k == "max_detections" and not (isinstance(v, int) and not isinstance(v, bool)
                                          and v >= 1):
            raise OptionError(f"max_detections must be an integer >= 1, got {v!r}")
        if k != "max_detections" and not (number and 0 <= v <= 1):
            raise OptionError(f"{k} must be a number in [0, 1], got {v!r}")
    return {k: (v if k == "max_detections" else float(v)) for k, v in given.items()}


def outputs_of(value) -> tuple[str, ...]:
    """``outputs``: a list or comma list of :data:`OUTPUTS` (default: the two PNGs)."""
    if value is None:
        return DEFAULT_OUTPUTS
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise OptionError(f"'outputs' must be a list of names from {', '.join(OUTPUTS)}")
    names = [n.strip() for n in names if n.strip()]
    bad = [n for n in names if n not in OUTPUTS]
    if bad:
        raise OptionError(f"unknown output {bad[0]!r}; choose from: {', '.join(OUTPUTS)}")
    return tuple(dict.fromkeys(names))


def targets_of(params: dict, count: int, model) -> list:
    """One target per image: ``target`` is one value for all or a list of ``count``; each a class
    index or label (checked now, so that a bad one fails only its request) or null (top-1).

    A detector's target is null (every detection), a detection's index (in ``:predict``'s order,
    with the same thresholds) or ``{"box": [x0, y0, x1, y1], "label": name or class}`` in the
    image's pixels; a segmenter's is null (every region) or a class index or label (its
    predicted region). ``ov.explain`` checks those against the image."""
    value = params.get("target")
    values = value if isinstance(value, list) and (
        getattr(model, "task", "classify") != "detect" or not _is_box(value)) else [value] * count
    if len(values) != count:
        raise TargetError(f"{len(values)} targets given for {count} images")
    out = []
    for t in values:
        if t is None:
            out.append(None)
            continue
        if getattr(model, "task", "classify") == "detect":
            out.append(_box_target(t))
            continue
        if isinstance(t, bool) or not isinstance(t, (int, str)):
            raise TargetError(f"a target must be a class index or a label, got {t!r}")
        scores = np.zeros((1, model.num_classes), np.float32)
        out.append(int(model.resolve_targets(t, scores)[0]))
    return out


def _is_box(value) -> bool:
    """A detector's ``[box, label]`` pair (one target), not a list of targets."""
    return len(value) == 2 and isinstance(value[0], list) and not isinstance(value[1], (list,
                                                                                        dict))


def _box_target(t):
    """One detector target as ``ov.explain`` takes it (a detection index or a box dict)."""
    if isinstance(t, int) and not isinstance(t, bool):
        if t < 0:
            raise TargetError(f"a detection index is >= 0, got {t}")
        return t
    if isinstance(t, list) and _is_box(t):
        t = {"box": t[0], "label": t[1]}
    if not isinstance(t, dict) or "box" not in t:
        raise TargetError(f"a detector's target is null (every detection), a detection index "
                          f"or {{\"box\": [x0, y0, x1, y1], \"label\": name}}; got {t!r}"[:300])
    box, label = t["box"], t.get("label", t.get("class"))
    if not (isinstance(box, list) and len(box) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
        raise TargetError(f"a box is four numbers [x0, y0, x1, y1], got {box!r}"[:300])
    if label is None or isinstance(label, bool) or not isinstance(label, (int, str)):
        raise TargetError(f"a box target needs its class: a label or an index, got {label!r}")
    return {"box": [float(v) for v in box], "label": label}


def predict_options(params: dict, model):
    """What ``:predict`` passes on: a classifier's ``top`` (an int), a detector's thresholds
    (sorted ``(option, value)`` pairs: a batch key)."""
    task = getattr(model, "task", "classify")
    if task == "classify":
        nms_of(params, model)  # refused with its message
        return top_of(params, model.num_classes)
    if params.get("top") is not None:
        raise OptionError(f"'top' is for classifiers; this model is a {task} model"
                          + (" (its options: score_threshold, iou_threshold, max_detections)"
                             if task == "detect" else ""))
    return tuple(sorted(nms_of(params, model).items()))


def top_of(params: dict, num_classes: int) -> int:
    """``top`` of a prediction: how many classes per image (default 5)."""
    top = params.get("top", 5)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise OptionError(f"'top' must be an integer >= 1, got {top!r}")
    return min(top, num_classes)


def _raw(opt: str, value):
    """A JSON value as the command line would have given it (``[16, 16]`` -> ``"16,16"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and value and all(
            isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise OptionError(f"option {opt!r} takes a number, a name, true/false or a list of numbers, "
                      f"got {value!r}")
