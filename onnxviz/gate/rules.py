"""The gate's rules, one small function each, registered by name.

A rule compares one baseline record with the new record of the same image and method and returns
a :class:`Verdict`. Its keyword-only parameters are its settings: their defaults are the gate's
defaults, and ``gate.toml`` overrides them (:mod:`onnxviz.gate.config`). Every rule also takes
``enabled``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError, close_matches
from ..metrics._common import iou, spearman, top_mask


@dataclass
class Verdict:
    """One rule on one image and method.

    Attributes:
        rule: the rule's name.
        passed: True (holds), False (fails) or None (does not apply: no region mask).
        value: the measured number (NaN where none).
        limit: the threshold it was held to.
        message: one line saying what was measured against what.
    """

    rule: str
    passed: bool | None
    value: float
    limit: float | None
    message: str

    def to_dict(self) -> dict:
        v = None if not math.isfinite(self.value) else round(float(self.value), 6)
        return {"rule": self.rule, "passed": self.passed, "value": v, "limit": self.limit,
                "message": self.message}


RULES: dict[str, Callable] = {}


def rule(name: str):
    """Decorator: register ``func(base, new, *, settings...) -> Verdict`` as rule ``name``."""

    def register(func):
        RULES[name] = func
        return func

    return register


def settings(name: str) -> dict[str, object]:
    """The settings of rule ``name`` with their defaults (``enabled`` included)."""
    func = get(name)
    sig = inspect.signature(func)
    out = {"enabled": True}
    out.update({n: p.default for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY})
    return out


def get(name: str) -> Callable:
    try:
        return RULES[name]
    except KeyError:
        hint = close_matches(name, RULES) or list(RULES)
        raise OptionError(f"unknown gate rule {name!r}; rules: {', '.join(hint)}") from None


def apply(name: str, base: dict, new: dict, values: dict) -> Verdict:
    """Run rule ``name`` with ``values`` (its settings, ``enabled`` included)."""
    values = dict(values)
    if not values.pop("enabled", True):
        return Verdict(name, None, float("nan"), None, "disabled")
    return get(name)(base, new, **values)


def _same_size(a: np.ndarray, shape) -> np.ndarray:
    if a.shape == tuple(shape):
        return a
    import cv2

    return cv2.resize(np.asarray(a, np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_LINEAR)


@rule("prediction")
def prediction(base: dict, new: dict) -> Verdict:
    """The top-1 class is the baseline's; for a detector's box, a detection of its class still
    overlaps the baseline box (IoU >= 0.5); for a segmenter's region, its class is still
    predicted somewhere."""
    b, n = base["prediction"], new["prediction"]
    if "iou" in n:
        ok = n["iou"] >= 0.5
        return Verdict("prediction", ok, float(n["iou"]), 0.5,
                       f"best {n['label']!r} detection at IoU {n['iou']:.2f} with the baseline "
                       "box" if n["box"] is not None else f"no {n['label']!r} detection")
    if "area" in n:
        ok = n["area"] > 0
        return Verdict("prediction", ok, float(n["area"]), float(b["area"]),
                       f"{n['label']!r} covers {100 * n['area']:.1f}% (baseline "
                       f"{100 * b['area']:.1f}%)")
    ok = b["index"] == n["index"]
    return Verdict("prediction", ok, float(n["index"]), float(b["index"]),
                   f"top-1 {n['label']!r} (baseline {b['label']!r})")


@rule("rank_correlation")
def rank_correlation(base: dict, new: dict, *, min: float = 0.8) -> Verdict:
    """Spearman's rank correlation between the baseline map and the new one is at least ``min``."""
    a = base["map"]
    b = _same_size(new["map"], a.shape)
    if a.max() == a.min() and np.array_equal(a, b):  # no correlation to take: the same map
        return Verdict("rank_correlation", True, float("nan"), min,
                       "both maps are the same constant (a blank map, flagged when made)")
    rho = spearman(a, b)
    ok = bool(np.isfinite(rho) and rho >= min)
    return Verdict("rank_correlation", ok, rho, min, f"Spearman {rho:.3f} (min {min:g})")


@rule("top_overlap")
def top_overlap(base: dict, new: dict, *, percent: float = 10.0, min: float = 0.5) -> Verdict:
    """The ``percent`` % highest pixels of both maps overlap with an IoU of at least ``min``."""
    if not 0 < percent <= 100:
        raise OptionError(f"top_overlap.percent must be in (0, 100], got {percent!r}")
    a = base["map"]
    v = iou(top_mask(a, percent), top_mask(_same_size(new["map"], a.shape), percent))
    return Verdict("top_overlap", v >= min, v, min,
                   f"IoU of the top {percent:g}% {v:.3f} (min {min:g})")


@rule("roi")
def roi(base: dict, new: dict, *, max_outside: float = 0.5) -> Verdict:
    """At most ``max_outside`` of the new map's positive mass lies outside the image's region of
    interest (images without a region mask are skipped)."""
    share = new.get("outside")
    if share is None:
        return Verdict("roi", None, float("nan"), max_outside, "no region mask")
    ok = bool(np.isfinite(share) and share <= max_outside)
    was = base.get("outside")
    since = f", baseline {was:.3f}" if was is not None else ""
    return Verdict("roi", ok, share, max_outside,
                   f"{share:.3f} of the attribution outside the region (max {max_outside:g}"
                   f"{since})")


@rule("deletion")
def deletion(base: dict, new: dict, *, max_increase: float = 0.05) -> Verdict:
    """The deletion AUC is at most ``max_increase`` above the baseline's (lower is better)."""
    b, n = base["metrics"].get("deletion"), new["metrics"].get("deletion")
    if b is None or n is None:
        return Verdict("deletion", None, float("nan"), max_increase, "no deletion AUC")
    d = n - b
    return Verdict("deletion", d <= max_increase, d, max_increase,
                   f"deletion AUC {n:.3f} (baseline {b:.3f}, {d:+.3f}; max +{max_increase:g})")
