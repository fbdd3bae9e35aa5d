"""The record of one explanation: one definition of the fields every output writes.

A record is one image x method: ``image`` (the source as given: a path, a URI, a name), ``method``,
``target`` (class index), ``label``, ``score`` and ``score_kind`` (``logit`` or ``probability``),
``box`` (a detector's box, ``[x0, y0, x1, y1]`` in the photo's pixels) or ``region`` (a
segmenter's region: ``{"source": "predicted" | "mask", "area": share of the image}``), None for a
classifier's class,
``params`` (the options the method ran with), ``outputs`` (the files written for it, by kind),
``timings`` (seconds per stage, ``total`` always) and ``extras`` (what the method adds: LIME's R²,
the gradient mode, ...). :meth:`Record.to_dict` gives them in that order, :meth:`Record.from_dict`
reads them back from a JSON Lines object or a Parquet row.

Who writes it: ``onnxviz explain --json`` (one JSON line, :func:`dumps`), the Ray engine (the
columns of :func:`onnxviz.distributed.store.explanation_table`), the server (v1 ``explanations``
and the v2 tensors, :mod:`onnxviz.serve.protocol`), the gate (the records of a baseline manifest,
:mod:`onnxviz.gate.baseline`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The fields of a record, in the order they are written.
FIELDS = ("image", "method", "target", "label", "score", "score_kind", "box", "region", "params",
          "outputs", "timings", "extras")

#: The fields an explanation has by itself (no image source, no files): the server's answers.
EXPLANATION_FIELDS = ("method", "target", "label", "score", "score_kind", "box", "region",
                      "params", "timings", "extras")


@dataclass
class Record:
    """One image x method (see the module docstring for the fields)."""

    image: str | None
    method: str
    target: int
    label: str
    score: float
    score_kind: str = "logit"
    box: list | None = None
    region: dict | None = None
    params: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    @classmethod
    def of(cls, image: str | None, explanation, outputs: dict | None = None) -> Record:
        """The record of ``explanation`` (its JSON-friendly fields, :meth:`Explanation.to_dict`)
        for the image ``image``, with the files ``outputs`` written for it."""
        d = explanation.to_dict()
        return cls(image=image, outputs=dict(outputs or {}),
                   **{k: d[k] for k in EXPLANATION_FIELDS})

    def to_dict(self, fields=FIELDS) -> dict:
        """``{field: value}`` for ``fields`` (default all, in :data:`FIELDS` order)."""
        return {f: getattr(self, f) for f in fields}

    @classmethod
    def from_dict(cls, d: dict) -> Record:
        """A record from :meth:`to_dict`'s output, a JSON Lines object or a Parquet row (where
        ``params`` and ``extras`` are JSON text and ``timings`` and ``outputs`` key-value pairs);
        fields left out take their defaults."""
        values = {}
        for f in FIELDS:
            if f not in d:
                continue
            v = d[f]
            if f in ("params", "extras", "region") and isinstance(v, str):
                v = json.loads(v)
            elif f in ("timings", "outputs") and isinstance(v, list):
                v = dict(v)
            values[f] = v
        values.setdefault("image", None)
        return cls(**values)


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def strict_json(obj):
    """``obj`` with NaN and infinite floats as None (JSON has no NaN; a reader would choke)."""
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return strict_json(obj.tolist())
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


def dumps(obj, **kw) -> str:
    """One JSON text, strict (no NaN), numpy values converted (a :class:`Record` as its dict)."""
    if isinstance(obj, Record):
        obj = obj.to_dict()
    return json.dumps(strict_json(obj), default=_default, allow_nan=False, **kw)


def table(rows: list[list], headers: list[str]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
