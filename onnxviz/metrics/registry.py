"""One registry of metrics: it feeds :func:`onnxviz.metrics.evaluate`, the CLI and the report.

A metric is a function ``f(model, explanation, mask=None, *, option=default, ...)`` returning a
:class:`Score`, registered with :func:`metric`. Its keyword-only parameters are its options (the
same way an explainer's are), so the API, ``onnxviz evaluate --metric-option`` and the docs table
read them from one place.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError, close_matches


@dataclass
class Score:
    """One metric's result for one explanation.

    Attributes:
        metric: the registry name.
        value: the number shown in tables (NaN where the metric does not apply to this image,
            such as a pointing game without a mask).
        details: what the number was computed from: curves (``x``, ``y``), per-stage correlations,
            thresholds. Arrays are converted to lists by :func:`Score.to_dict`.
    """

    metric: str
    value: float
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        def plain(v):
            if isinstance(v, np.ndarray):
                return [plain(x) for x in v.tolist()] if v.ndim else plain(v.item())
            if isinstance(v, np.generic):
                return v.item()
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {str(k): plain(x) for k, x in v.items()}
            if isinstance(v, float) and not np.isfinite(v):
                return None
            return v

        return {"metric": self.metric, "value": plain(float(self.value)),
                "details": plain(self.details)}


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: registry name (``deletion``, ``pointing_game``, ...).
        func: ``func(model, explanation, mask=None, **options) -> Score``.
        summary: one line for the CLI help and the docs table.
        higher_is_better: the direction of a better explanation.
        needs_mask: NaN for images without a region mask (box or segmentation).
        paper: where the metric is defined.
    """

    name: str
    func: Callable
    summary: str
    higher_is_better: bool
    needs_mask: bool = False
    paper: str = ""

    def options(self) -> dict[str, inspect.Parameter]:
        """The keyword-only options of the metric with their defaults."""
        sig = inspect.signature(self.func)
        return {n: p for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}

    def __call__(self, model, explanation, mask=None, **options) -> Score:
        known = self.options()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise OptionError(f"metric {self.name!r} has no option {', '.join(unknown)}; "
                              f"its options: {', '.join(known) or 'none'}")
        return self.func(model, explanation, mask, **options)


_REGISTRY: dict[str, Metric] = {}
# modules that register metrics when imported, in the order the metrics are listed
_MODULES = ("curves", "road", "localisation", "complexity", "randomisation")
_loaded = False


def metric(name: str, summary: str, *, higher_is_better: bool, needs_mask: bool = False,
           paper: str = ""):
    """Decorator: register ``func`` as the metric ``name``."""

    def register(func):
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} registered twice")
        _REGISTRY[name] = Metric(name, func, summary, higher_is_better, needs_mask, paper)
        return func

    return register


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(f"{__package__}.{mod}")
        _loaded = True


def names() -> list[str]:
    """Every registered metric, in listing order."""
    _load_all()
    return list(_REGISTRY)


def get(name: str) -> Metric:
    """The metric called ``name``; an unknown name lists the close ones."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = close_matches(name, _REGISTRY) or list(_REGISTRY)
        raise OptionError(f"unknown metric {name!r}; choose from: {', '.join(hint)}") from None


def parse(spec) -> list[str]:
    """``"deletion,insertion"``, a list of such, or ``"all"`` -> metric names, in order."""
    parts = [spec] if isinstance(spec, str) else list(spec)
    wanted = [n.strip() for p in parts for n in str(p).split(",") if n.strip()]
    if not wanted:
        raise OptionError(f"no metric given; choose from: {', '.join(names())}")
    out: list[str] = []
    for n in wanted:
        for m in names() if n == "all" else [get(n).name]:
            if m not in out:
                out.append(m)
    return out
