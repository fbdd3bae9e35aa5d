"""The type and range of every method option, declared once.

:class:`~onnxviz.explainers.base.Explainer` checks its options against :data:`RANGES` before any
work, so the library, the CLI (which converts text with :mod:`onnxviz.explainers.options` and
then builds the explainer) and the server refuse the same values with the same message. An explainer whose
option needs another range sets ``ranges = {"name": Range(...)}`` on its class.

Counts that set the work (samples, masks, steps) are bounded so that a run stays within hours,
not centuries; the memory they imply is bounded separately, since every method streams its samples
in batches cut to the memory budget (:func:`onnxviz.limits.fit_batch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..model.numeric import MAX_BATCH


@dataclass(frozen=True)
class Range:
    """A number option: ``kind`` (int or float), inclusive bounds unless ``open_low``/``open_high``;
    ``pair`` also accepts an (h, w) pair of such numbers; ``text`` also accepts a word (a fill or
    baseline name, checked by the method); ``none`` accepts None; ``array`` accepts an ndarray
    (a baseline tensor or image, checked by the method); ``many`` accepts a list or tuple that is
    not of numbers alone (a set of baselines, checked by the method)."""

    kind: type
    low: float
    high: float
    open_low: bool = False
    open_high: bool = False
    pair: bool = False
    text: bool = False
    none: bool = False
    per_channel: bool = False
    array: bool = False
    many: bool = False
    words: tuple = ()

    def describe(self) -> str:
        lo = "(" if self.open_low else "["
        hi = ")" if self.open_high else "]"
        kind = "an integer" if self.kind is int else "a number"
        number = f"{kind} in {lo}{_fmt(self.low)}, {_fmt(self.high)}{hi}"
        if self.per_channel:
            number += " (or one per channel)"
        elif self.pair:
            number += " (or an h,w pair)"
        if not (self.text or self.array):
            return number
        parts = [f"one of {', '.join(self.words)}" if self.words else "a word"] if self.text \
            else []
        parts.append(number)
        if self.array:
            parts.append("an image file or a .npy array (a model-space tensor or an image)")
        if self.many:
            parts.append("or a list of those (a set)")
        return ", ".join(parts)

    def check(self, name: str, value) -> None:
        if value is None and self.none:
            return
        if isinstance(value, str) and self.text:
            return
        if isinstance(value, np.ndarray) and value.ndim > 1 and self.array:
            return
        if isinstance(value, (tuple, list)) and self.many and (not value or not all(
                isinstance(v, (int, float, np.integer, np.floating)) for v in value)):
            return
        if isinstance(value, (tuple, list)) and (self.pair or self.per_channel):
            ok = (len(value) == 2) if self.pair and not self.per_channel else 1 <= len(value) <= 4
            if not ok:
                raise OptionError(f"{name} must be {self.describe()} or "
                                  f"{'an (h, w) pair' if self.pair else 'one per channel'}, "
                                  f"got {value!r}")
            for v in value:
                self._one(name, v)
            return
        self._one(name, value)

    def _one(self, name: str, value) -> None:
        if isinstance(value, (bool, np.bool_)):
            raise OptionError(f"{name} must be {self.describe()}, got {value!r}")
        if self.kind is int:
            ok = isinstance(value, (int, np.integer))
        else:
            ok = isinstance(value, (int, float, np.integer, np.floating))
        if not ok:
            raise OptionError(f"{name} must be {self.describe()}, got {type(value).__name__} "
                              f"{value!r}"[:300])
        v = float(value) if self.kind is float else value
        if self.kind is float and not math.isfinite(v):
            raise OptionError(f"{name} must be a finite number, got {value!r}")
        below = v <= self.low if self.open_low else v < self.low
        above = v >= self.high if self.open_high else v > self.high
        if below or above:
            raise OptionError(f"{name} must be {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class Words:
    """A word option: one of ``choices``; ``none`` also accepts None (shown as ``auto``, the
    method's own choice). The CLI's help, the docs and the check read the same tuple."""

    choices: tuple
    none: bool = False

    def describe(self) -> str:
        return f"one of {', '.join(self.choices)}" + (" or auto" if self.none else "")

    def check(self, name: str, value) -> None:
        if value is None and self.none:
            return
        if not isinstance(value, str) or value not in self.choices:
            raise OptionError(f"{name} must be one of {', '.join(map(repr, self.choices))}, "
                              f"got {value!r}"[:300])


def _fmt(x: float) -> str:
    return f"{int(x):,}".replace(",", "_") if float(x).is_integer() and abs(x) >= 1e4 else f"{x:g}"


#: Every numeric option of every method (by option name).
RANGES: dict[str, Range] = {
    "batch_size": Range(int, 1, MAX_BATCH),
    "seed": Range(int, 0, 2**63 - 1),
    # occlusion
    "patch": Range(int, 1, 65536, pair=True),
    "stride": Range(int, 1, 65536, pair=True),
    "fill": Range(float, -1e6, 1e6, text=True, per_channel=True, array=True,
                  words=("gray", "black", "mean", "blur", "zero")),
    "projective_threshold": Range(float, 0, 1, open_low=True),
    "drilldown": Range(float, 0, 1, open_low=True),
    # LIME
    "num_samples": Range(int, 1, 100_000),
    "kernel_size": Range(float, 0, 100, open_low=True),
    "max_dist": Range(float, 0, 1e4, open_low=True),
    "ratio": Range(float, 0, 1),
    "n_segments": Range(int, 1, 5000),
    "compactness": Range(float, 0, 1e4, open_low=True),
    "scale": Range(float, 0, 1e6, open_low=True),
    "kernel_width": Range(float, 0, 1e3, open_low=True),
    "alpha": Range(float, 0, 1e6),
    "top_labels": Range(int, 0, 100_000),
    # RISE
    "num_masks": Range(int, 1, 100_000),
    "cells": Range(int, 1, 1024),
    "p": Range(float, 0, 1, open_low=True, open_high=True),
    # gradients
    "samples": Range(int, 1, 10_000),
    "noise": Range(float, 0, 100),
    "stdev": Range(float, 0, 1e6),
    "steps": Range(int, 1, 10_000),
    "baseline": Range(float, 0, 255, text=True, array=True, words=("zero", "black")),
    # attention
    "discard_ratio": Range(float, 0, 1, open_high=True),
}

#: The vocabularies of word options, declared once: the methods check their options against these
#: (through :data:`WORDS` or their class's ``ranges``) and the CLI lists them in its help.
REDUCE = ("max_abs", "abs", "signed")
SCORES = ("logit", "probability")
#: NoiseTunnel's aggregations of the noisy attributions (Captum's ``nt_type``).
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")
HEAD_FUSIONS = ("mean", "max", "min")
CAM_WEIGHTS = ("probability", "channel_softmax")
UPSAMPLE = ("bilinear", "nearest")
#: Integrated Gradients' path rules (Captum's ``method``).
IG_RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
            "riemann_trapezoid", "riemann")

#: Word options whose vocabulary is the same for every method that has them.
WORDS: dict[str, Words] = {
    "reduce": Words(REDUCE),
    "score": Words(SCORES),
    "nt_type": Words(NT_TYPES),
    "head_fusion": Words(HEAD_FUSIONS),
    "weights": Words(CAM_WEIGHTS),
    "upsample": Words(UPSAMPLE),
}


def _lower_words() -> dict[str, Words]:
    """Vocabularies defined in the lower floors (perturbation kernels), read when first needed."""
    from ..perturb.occlusion import EDGES
    from ..perturb.segment import METHODS as SEGMENTATIONS

    return {"edges": Words(tuple(EDGES)), "segmentation": Words(tuple(SEGMENTATIONS))}


def word_specs() -> dict[str, Words]:
    """:data:`WORDS` and the vocabularies of the perturbation kernels."""
    return {**WORDS, **_lower_words()}


#: ``baseline`` of the methods that take a set of baselines (Gradient SHAP, DeepLIFT SHAP): a grey
#: level, a word, an array, or a list of baselines (checked by :mod:`.baselines`).
BASELINE_SET = Range(float, 0, 255, text=True, array=True, many=True,
                     words=("zero", "black", "uniform"))

#: Options of filter visualization and deep dream (:mod:`onnxviz.inside`).
INSIDE: dict[str, Range] = {
    "steps": Range(int, 1, 10_000),
    "lr": Range(float, 0, 1e4, open_low=True),
    "jitter": Range(int, 0, 1024),
    "blur": Range(float, 0, 100),
    "tv": Range(float, 0, 10),
    "octaves": Range(int, 1, 12),
    "octave_scale": Range(float, 1, 8, open_low=True),
    "seed": RANGES["seed"],
    "batch_size": RANGES["batch_size"],
}

#: Options that name something (a layer): text or None, checked by the method.
TEXT = frozenset({"layer"})


def check_options(method: str, params: dict, extra: dict | None = None) -> None:
    """Refuse any option of ``method`` outside its declared type, range or vocabulary."""
    table = {**RANGES, **word_specs(), **(extra or {})}
    for name, value in params.items():
        spec = table.get(name)
        if spec is not None:
            spec.check(name, value)
        elif name in TEXT and value is not None and not isinstance(value, str):
            raise OptionError(f"{method}: {name} must be a name (text), got "
                              f"{type(value).__name__} {value!r}"[:300])
