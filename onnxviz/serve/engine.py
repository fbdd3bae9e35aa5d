"""The served models: what runs on a batch, on a worker thread.

A :class:`ServedModel` holds one loaded :class:`onnxviz.Model` and nothing the library lacks:
a batch of explanations is ``registry.get(method)(model, **options).explain(images, targets)``
(one Explanation per image, as ``ov.explain`` returns them), a batch of predictions is
``model.predict``. The PNGs are rendered afterwards, per request and off the batch's worker (so the
next batch need not wait for them), by :func:`onnxviz.results.pictures` with the command line's
defaults (jet, overlay alpha 0.4, top 1% saturated): they equal the files ``onnxviz explain`` writes.
"""

from __future__ import annotations

import base64
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import viz
from ..errors import OptionError
from ..explainers import registry
from ..results import PNGS, Render, pictures


@dataclass
class Item:
    """One image of a request, as it waits in a batch: its target and the outputs asked for,
    drawn with ``render`` (the colormap a request may choose)."""

    image: np.ndarray
    target: object = None
    outputs: tuple[str, ...] = ()
    render: Render = PNGS


@dataclass
class Result:
    """One explanation and the PNGs asked for (base64 text); ``instance`` is the request's image
    it explains (a detector or a segmenter gives several per image: one per box or region)."""

    explanation: object
    pngs: dict
    instance: int = 0


def model_name(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named by its file stem) -> (name, path)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise OptionError(f"model name {name!r} must be letters, digits, '.', '_' or '-' "
                          "(give NAME=PATH to choose one)")
    return name, path


class ServedModel:
    """One model under its name.

    Args:
        name: the name in the URLs (``/v1/models/{name}:explain``).
        model: the loaded :class:`onnxviz.Model`.
    """

    def __init__(self, name: str, model):
        self.name = name
        self.model = model

    @property
    def task(self) -> str:
        """``classify``, ``detect`` or ``segment`` (:mod:`onnxviz.model.task`)."""
        return getattr(self.model, "task", "classify")

    def explain(self, method: str, kwargs: dict, items: list[Item]) -> list:
        """Explain a batch: one explainer call, one Explanation per item. A detector or a
        segmenter gives a list per item instead (one Explanation per box or region), from
        ``ov.explain`` item by item, whose targets are boxes and regions."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the logs say what a warning would
            if self.task != "classify":
                from ..explainers import explain

                return [explain(self.model, it.image, method=method, target=it.target, **kwargs)
                        for it in items]
            explainer = registry.get(method)(self.model, **kwargs)
            return explainer.explain([it.image for it in items],
                                     target=[it.target for it in items])

    def predict(self, top, items: list[Item]) -> list:
        """Top-``top`` classes per image, one ``model.predict`` call for the batch; a detector's
        :class:`~onnxviz.detection.Detections` or a segmenter's
        :class:`~onnxviz.model.dense.Segmentation` per image, where ``top`` is the tuple of
        ``(option, value)`` pairs of its ``predict`` (thresholds)."""
        if self.task != "classify":
            return self.model.predict([it.image for it in items], **dict(top))
        return self.model.predict([it.image for it in items], top=top)

    def warm_up(self, method: str) -> None:
        """Build the sessions (and gradient graphs) before the first request arrives."""
        h, w = self.model.input.size
        img = np.full((h, w, 3), 128, np.uint8)
        self.predict(1 if self.task == "classify" else (), [Item(img)])
        if self.task == "classify" and registry.get(method).applies_to(self.model) is None:
            self.explain(method, {}, [Item(img)])

    def metadata(self, methods: list[str]) -> dict:
        """The Open Inference Protocol's model metadata."""
        h, w = self.model.input.size
        n = -1
        return {
            "name": self.name,
            "versions": [],
            "platform": "onnxviz",
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [n],
                        "parameters": {"content": "base64 PNG, JPEG, BMP or WebP file (as "
                                                  "binary data: the file's bytes); or UINT8 "
                                                  "[N, H, W, 3] pixels"}}],
            "outputs": [
                {"name": "heatmap", "datatype": "FP32", "shape": [n, h, w]},
                {"name": "target", "datatype": "INT64", "shape": [n]},
                {"name": "label", "datatype": "BYTES", "shape": [n]},
                {"name": "score", "datatype": "FP32", "shape": [n]},
                {"name": "heatmap_png", "datatype": "BYTES", "shape": [n]},
                {"name": "overlay_png", "datatype": "BYTES", "shape": [n]},
            ],
            "parameters": {"methods": methods, "default_method": methods[0],
                           "input_size": [h, w], "num_classes": self.model.num_classes,
                           "task": self.task, "layout": getattr(self.model, "layout", None)},
        }


def results(explanations: list, items: list[Item]) -> list[Result]:
    """Each explanation with the PNGs its item asked for, in request order (a detector's boxes
    and a segmenter's regions one after the other, each saying its image)."""
    out = []
    for k, (e, it) in enumerate(zip(explanations, items)):
        for one in (e if isinstance(e, list) else [e]):
            out.append(Result(one, render(one, it.image, it.outputs, it.render), k))
    return out


def render(e, image: np.ndarray, outputs, how: Render = PNGS) -> dict:
    """The PNGs of ``outputs`` as base64 text: ``heatmap_png`` (model input size) and
    ``overlay_png`` (the sent image's size), drawn as ``how`` says (the command line's defaults
    unless the request chose a colormap); empty text for a map that is no finding (not finite or
    blank: the answer's ``extras`` or ``flags`` say why)."""
    from ..explainers.base import not_drawn

    if not_drawn(e):
        return {k: "" for k in ("heatmap_png", "overlay_png") if k in outputs}
    kinds = [k.removesuffix("_png") for k in outputs if k in ("heatmap_png", "overlay_png")]
    pics = pictures(image, e, how, kinds)
    return {f"{k}_png": base64.b64encode(viz.encode_png(p)).decode("ascii")
            for k, p in pics.items()}
