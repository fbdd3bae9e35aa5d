"""Recompute a baseline's maps with a new model and hold them to the rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from . import baseline as _baseline
from . import config as _config
from . import rules as _rules


@dataclass
class Case:
    """One image and method: the baseline and new records and every rule's verdict."""

    image: str
    method: str
    base: dict
    new: dict
    verdicts: list = field(default_factory=list)

    @property
    def failed(self) -> list:
        return [v for v in self.verdicts if v.passed is False]

    @property
    def name(self) -> str:
        """The image, and for a detector's box or a segmenter's region which one."""
        item = self.base.get("item")
        return f"{self.image} {item}" if item else self.image

    def to_dict(self) -> dict:
        return {"image": self.image, "item": self.base.get("item"),
                "box": self.base.get("box"), "method": self.method,
                "target": self.base["target"], "label": self.base["label"],
                "score": self.new["score"], "baseline_score": self.base["score"],
                "params": self.base.get("params", {}), "passed": not self.failed,
                "rules": [v.to_dict() for v in self.verdicts],
                "metrics": self.new.get("metrics", {}),
                "baseline_metrics": self.base.get("metrics", {})}


@dataclass
class Result:
    """The outcome of :func:`check`."""

    cases: list
    skipped: list  # baseline images not given

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.cases)

    def failures(self) -> dict[str, list[str]]:
        """``{rule: [image, ...]}`` of the rules that failed somewhere."""
        out: dict[str, list[str]] = {}
        for c in self.cases:
            for v in c.failed:
                names = out.setdefault(v.rule, [])
                if c.image not in names:
                    names.append(c.image)
        return out


def match_images(doc: dict, names: list[str], images: list) -> list[str]:
    """Check that every given image is in the baseline with the same pixels; returns the
    baseline images that were not given."""
    known = {i["name"]: i for i in doc["images"]}
    for n, im in zip(names, images):
        if n not in known:
            raise OptionError(f"image {n!r} is not in the baseline (it has "
                              f"{', '.join(list(known)[:5])}{' ...' if len(known) > 5 else ''})")
        if known[n]["sha256"] != _baseline.sha256_pixels(im):
            raise OptionError(f"image {n!r} differs from the one the baseline was made from")
    return [n for n in known if n not in set(names)]


def check(model, images, names, doc: dict, *, config=None, masks=None, progress=None) -> Result:
    """Explain ``images`` with the baseline's methods and targets and apply the rules.

    Args:
        model: the new :class:`onnxviz.Model`.
        images: (H, W, 3) uint8 images.
        names: their names (as in the baseline).
        doc: a baseline from :func:`onnxviz.gate.baseline.read`.
        config: rules' settings (:func:`onnxviz.gate.config.load`); default: the defaults.
        masks: regions per image overriding the baseline's, or None.
        progress: called once per image and method.

    A detector's baseline boxes are explained again as boxes (each matched to the new model's
    best-overlapping candidate of its class), a segmenter's regions as regions.
    """
    config = config or _config.parse({})
    skipped = match_images(doc, names, images)
    if masks is None:
        masks = [doc["masks"].get(n) for n in names]
    base = {(r["image"], r["method"], r.get("item")): r for r in doc["records"]}
    targets = {k: _baseline.target_of(r) for k, r in base.items()}
    metric_names = list(dict.fromkeys(m for r in doc["records"] for m in r["metrics"]))
    new = _baseline.observe(model, images, names, doc["methods"], targets=targets, masks=masks,
                            metric_options=doc.get("metric_options") or {},
                            metric_names=metric_names, progress=progress)
    cases = []
    for rec in new:
        b = base[(rec["image"], rec["method"], rec.get("item"))]
        settings = _config.for_method(config, rec["method"])
        verdicts = [_rules.apply(name, b, rec, settings[name]) for name in _rules.RULES]
        cases.append(Case(rec["image"], rec["method"], b, rec, verdicts))
    return Result(cases, skipped)


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b - a`` after scaling each map by its largest absolute value (in [-1, 1])."""
    from .rules import _same_size

    b = _same_size(b, a.shape)

    def unit(x):
        x = np.asarray(x, np.float64)
        m = np.abs(x).max()
        return x / m if m > 0 else x

    return (unit(b) - unit(a)).astype(np.float32)
