"""The pieces every explainer shares: the result type and the base class."""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._checks import check_seed


@dataclass(repr=False)
class Explanation:
    """What an explainer says about one image and one target.

    Attributes:
        heatmap: float32 (H, W) at the model's input resolution; larger means more important.
        raw: the method's own result (occlusion grid, CAM at layer resolution, LIME weights, ...).
        target: the class index explained.
        label: its name, or ``str(target)`` when the model has no labels.
        score: the model's score for ``target`` on the unperturbed image (the quantity explained).
        method: the registry name of the method.
        params: the options the method ran with.
        timings: seconds spent per stage (``"total"`` always present).
        image: the pixels the heatmap is aligned with: the image resized to the model's input
            (HxWx3 uint8; float32 on the 0..255 scale for an image deeper than 8 bits, which
            is explained at full precision). Overlays on the original photo resize the heatmap
            instead (``onnxviz.viz.overlay``).
        extras: method-specific results (LIME's intercept and R², occlusion's worst patch, ...).
        source: the image as it was given (a path or the caller's array, not copied), so that
            :meth:`save` draws on the photo at its own size; None when unknown.
        box: for a detector's box, ``[x0, y0, x1, y1]`` in the photo's pixels; else None.
        region: for a segmenter's region, ``{"source": "predicted" | "mask", "area": share of
            the image}``; else None.
    """

    heatmap: np.ndarray
    raw: Any
    target: int
    label: str
    score: float
    method: str
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    image: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    source: Any = field(default=None, compare=False)
    box: list | None = None
    region: dict | None = None

    def __repr__(self) -> str:
        """One line: method, label, score and its kind, the heatmap's shape, and any flag
        (:data:`FLAGS`: a map that is not a finding)."""
        shape = "x".join(str(n) for n in np.shape(self.heatmap))
        flags = "".join(f", {k}: {self.extras[k]}" for k in FLAGS if self.extras.get(k))
        return (f"<{type(self).__name__} {self.method}: class {int(self.target)} {self.label!r}, "
                f"{self.score_kind} {float(self.score):.4g}, heatmap {shape}{flags}>")

    @property
    def score_kind(self) -> str:
        """What ``score`` is: ``"probability"`` (softmax, the perturbation methods' default) or
        ``"logit"`` (the score before the model's softmax, what gradient methods differentiate);
        for a detector's box ``"confidence"`` (the head's class score of the box's anchor), for
        a segmenter's region ``"logit sum"`` (the class's logits summed over the region)."""
        if self.box is not None:
            return "confidence"
        if self.region is not None:
            return "logit sum"
        return self.params.get("score", "logit")

    def to_dict(self) -> dict:
        """JSON-friendly summary (no arrays)."""
        return {
            "method": self.method,
            "target": int(self.target),
            "label": self.label,
            "score": float(self.score),
            "score_kind": self.score_kind,
            "box": None if self.box is None else [round(float(v), 2) for v in self.box],
            "region": None if self.region is None else dict(self.region),
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "timings": {k: round(float(v), 6) for k, v in self.timings.items()},
            "extras": {k: _jsonable(v) for k, v in self.extras.items() if not isinstance(v, np.ndarray)},
        }

    # A picture for people (onnxviz.viz.notebook): Jupyter shows an Explanation by itself.
    def _repr_png_(self) -> bytes:
        from ..viz.notebook import to_png

        return to_png(self)

    def _repr_html_(self) -> str:
        from ..viz.notebook import to_html

        return to_html(self)

    def show(self, *, cmap: str = "jet", alpha: float = 0.4) -> None:
        """Shows the overlay and its caption with matplotlib (nothing when it is not installed)."""
        from ..viz.notebook import show

        show(self, cmap=cmap, alpha=alpha)

    def save(self, path, *, cmap: str = "jet", alpha: float = 0.4):
        """Writes the overlay under its whole caption (method, label, score) as a PNG, on the
        photo at its own size and aspect ratio when :attr:`source` is known; returns the path."""
        from ..viz.notebook import save

        return save(self, path, cmap=cmap, alpha=alpha)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, np.ndarray) and v.size <= 16:
        return v.tolist()
    return repr(v)


class Explainer:
    """Base class: subclasses set ``name`` and take their options as keyword-only arguments.

    Subclasses implement :meth:`explain`. ``self.params`` holds the options as given, for the
    :class:`Explanation`.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""  # "perturbation", "gradient", "cam"
    summary: ClassVar[str] = ""  # one line for the CLI help and the README table
    #: the model tasks the method explains (``classify``; ``detect`` for D-RISE, which reads the
    #: raw head itself; classifier methods explain a detector's boxes through
    #: :class:`onnxviz.explainers.boxes.BoxView`)
    tasks: ClassVar[tuple] = ("classify",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "explain" in cls.__dict__:
            cls.explain = _say_gradient_mode(cls.__dict__["explain"])

    #: Option ranges that differ from the shared table (:data:`onnxviz.explainers.ranges.RANGES`).
    ranges: ClassVar[dict] = {}

    def __init__(self, model, **params):
        from ..errors import OptionError
        from .ranges import check_options

        if not (hasattr(model, "forward") and hasattr(model, "input")):
            raise OptionError(f"{self.name} needs a model loaded with onnxviz.load(path), got "
                              f"{type(model).__name__}")
        check_options(self.name, params, self.option_specs())
        task = getattr(model, "task", "classify")
        if task not in self.tasks and "detect" in self.tasks:
            raise OptionError(f"{self.name} explains the boxes of object detectors; this model is "
                              f"a {task} model")
        if task not in self.tasks:
            what = (f"a {model.layout} detector" if task == "detect" else "a segmenter")
            hint = ("onnxviz.explain(model, image, method, target=None | detection index | "
                    "{'box': [x0, y0, x1, y1], 'label': name}) explains its boxes"
                    if task == "detect" else "onnxviz.explain(model, image, method, target=None "
                    "| class | {'label': name, 'mask': (H, W) booleans}) explains its regions")
            raise OptionError(f"{self.name} explains class scores; this model is {what} of "
                              f"{model.num_classes} classes: {hint}")
        if "seed" in params:
            check_seed(params["seed"])
        self.model = model
        self.params = params

    def explain(self, images, target=None) -> list[Explanation]:
        raise NotImplementedError

    @classmethod
    def applies_to(cls, model) -> str | None:
        """Why this method cannot explain ``model`` at all, or None when it can.

        ``all`` in the CLI (``report``, ``demo``, ``bench``) skips the methods that do not apply
        (the attention methods on a CNN); naming such a method still gives its error.
        """
        return None

    @classmethod
    def option_specs(cls) -> dict:
        """The method's own option specs (``ranges`` of the class and its bases, the subclass
        winning) on top of the shared tables (:mod:`.ranges`): what the check, the CLI help and
        the docs read."""
        from .ranges import RANGES, word_specs

        own: dict = {}
        for klass in reversed(cls.__mro__):
            own.update(klass.__dict__.get("ranges", {}))
        return {**RANGES, **word_specs(), **own}

    @classmethod
    def options(cls) -> dict[str, inspect.Parameter]:
        """The keyword-only options of ``__init__`` with their defaults (the CLI's flags)."""
        sig = inspect.signature(cls.__init__)
        return {n: p for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


def _say_gradient_mode(explain):
    """Wrap an explainer's ``explain`` so that every result of a method that differentiates says
    how the gradients were defined (``extras["gradients"]``: exact, upcast, ste, surrogate; see
    :mod:`onnxviz.model.precision`), whichever front door called it (API, CLI, report)."""
    import functools

    @functools.wraps(explain)
    def wrapper(self, images, target=None):
        if isinstance(target, np.ndarray) and target.ndim == 0:
            target = target.item()
        out = explain(self, images, target=target)
        given = images if isinstance(images, (list, tuple)) else [images]
        if len(given) == len(out):
            for e, source in zip(out, given):
                if e.source is None:
                    e.source = source
        mode = getattr(self.model, "gradient_mode", None)
        if mode and self.family != "perturbation" and getattr(self, "needs_gradients", True):
            for e in out:
                e.extras.setdefault("gradients", mode)
        for e in out:
            flag_unusable(e, self)
            if e.params.get("layer", "") is None and e.extras.get("layer"):
                e.params = {**e.params, "layer": e.extras["layer"]}  # the layer actually used
        return out

    return wrapper


#: The ``extras`` keys that mark a map which is no finding, and the word that names each.
FLAGS = {"nonfinite": "not finite", "blank": "blank"}


def not_drawn(e: Explanation) -> str:
    """Why ``e``'s map must not be drawn as if it were a finding, in words (``""`` when it may
    be): the flags of :data:`FLAGS` it carries. Every front door (CLI line and files, report
    card, notebook caption, server answer) asks this."""
    return "; ".join(f"{word}: {e.extras[k]}" for k, word in FLAGS.items() if e.extras.get(k))


def flag_unusable(e: Explanation, explainer=None) -> None:
    """Flag a map that is no finding, and warn: :func:`flag_nonfinite`, else :func:`flag_blank`."""
    flag_nonfinite(e)
    if not e.extras.get("nonfinite"):
        flag_blank(e, explainer)


def flag_nonfinite(e: Explanation) -> None:
    """Mark an explanation whose score or map has NaN or infinite values
    (``extras["nonfinite"]``, a sentence) and warn (:class:`~onnxviz.errors.NonFiniteWarning`):
    such a map is reported, never drawn as if valid."""
    import warnings

    from ..errors import NonFiniteWarning

    bad = []
    if not np.isfinite(e.score):
        bad.append(f"the score is {e.score}")
    heat = np.asarray(e.heatmap)
    n = int(heat.size - np.count_nonzero(np.isfinite(heat)))
    if n:
        bad.append(f"{n} of {heat.size} map values are NaN or infinite")
    if bad:
        e.extras["nonfinite"] = "; ".join(bad)
        warnings.warn(f"{e.method}: the model's output is not finite ({'; '.join(bad)}): "
                      "the map is not valid", NonFiniteWarning, stacklevel=5)


def flag_blank(e: Explanation, explainer=None) -> None:
    """Mark an explanation whose map is constant (all zero, most often: a gradient that
    vanished) with ``extras["blank"]``, a sentence with the reason, and warn
    (:class:`~onnxviz.errors.BlankMapWarning`): such a map is reported, never drawn.

    For a method that differentiates, the reason says whether the gradient of the explained
    score is zero at every input value and, for an int8 file, which quantizers saturate where
    the gradient reaches them (:func:`onnxviz.model.saturation.why_vanished`).
    """
    import warnings

    from ..errors import BlankMapWarning

    heat = np.asarray(e.heatmap)
    if heat.size == 0 or np.ptp(heat) != 0:
        return
    v = float(heat.flat[0])
    reason = ["the map is all zero" if v == 0 else f"the map is constant ({v:.4g} everywhere)"]
    model = getattr(explainer, "model", None)
    if _differentiates(explainer) and e.image is not None and hasattr(model, "gradients"):
        reason += _vanished(model, e, explainer)
    e.extras["blank"] = "; ".join(reason)
    warnings.warn(f"{e.method}: {e.extras['blank']} (not drawn as a finding)", BlankMapWarning,
                  stacklevel=5)


def _differentiates(explainer) -> bool:
    return explainer is not None and explainer.family != "perturbation" and getattr(
        explainer, "needs_gradients", True)


def _vanished(model, e: Explanation, explainer) -> list[str]:
    """Sentences on the gradient of ``e``'s target at its image where the method takes it (the
    input, or a CAM's layers); empty when it is not zero."""
    from ..model.saturation import why_vanished

    layers = getattr(explainer, "layers", None) or []
    cam = explainer.family == "cam" and layers
    wrt = [ly.tensor for ly in layers] if cam else [model.input.name]
    where = f"layer {layers[0].name!r}" if cam else "every input value"
    said = []
    try:  # a diagnosis only: the map's flag stands without it (BLE001: any failure)
        x = model.normalize(np.asarray(e.image)[None])
        seed = np.zeros((1, model.num_classes), np.float32)
        seed[0, int(e.target)] = 1
        grads, _, _ = model.gradients(x, seed, wrt=wrt)
        if any(np.any(g) for g in grads.values()):
            return []
        said.append(f"the gradient of logit {int(e.target)} is zero at {where} "
                    f"(gradients {getattr(model, 'gradient_mode', 'exact')})")
        said.append(why_vanished(model, x, int(e.target)))
    except Exception:  # noqa: BLE001
        pass
    return [s for s in said if s]


class Timer:
    """Accumulates wall time per stage: ``with t("forward"): ...``; ``t.total()``."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t

    def result(self, share: int = 1) -> dict[str, float]:
        """Stage times (divided by ``share`` images) plus ``total``."""
        out = {k: v / share for k, v in self.times.items()}
        out["total"] = (time.perf_counter() - self._t0) / share
        return out
