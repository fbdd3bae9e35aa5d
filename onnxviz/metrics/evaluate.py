"""Metrics over many explanations: per-image records, the method x metric summary, and their JSON
and CSV forms.

Records have the fields every onnxviz output uses (``image``, ``method``, ``target``, ``label``,
``score``, ``params``, ``timings``) plus ``metrics`` (name -> value) and ``details`` (name ->
curve or stages). The summary gives, per method and metric, the mean over the images where the
metric applies and a 95 % confidence interval of that mean (Student's t).
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import numpy as np

from ..errors import OnnxvizError, OptionError
from . import registry


def evaluate(model, explanations, metrics="all", *, masks=None, options=None,
             images=None) -> list[dict]:
    """Score explanations with metrics.

    Args:
        model: the :class:`onnxviz.Model` that was explained.
        explanations: :class:`onnxviz.Explanation` objects (their ``image`` is what is scored).
        metrics: metric names, a comma list or ``"all"`` (see :func:`onnxviz.metrics.names`).
        masks: one region per explanation (array, box dict or None), or None for none.
        options: ``{metric: {option: value}}`` (see ``onnxviz.metrics.get(name).options()``).
        images: a name per explanation for the records (default ``"image N"``).

    Returns:
        One record per explanation (see the module docstring).
    """
    names = registry.parse(metrics)
    explanations = list(explanations)
    options = dict(options or {})
    for m in options:
        registry.get(m)
    masks = [None] * len(explanations) if masks is None else list(masks)
    images = [f"image {i}" for i in range(len(explanations))] if images is None else list(images)
    if not len(masks) == len(images) == len(explanations):
        raise OptionError(f"{len(explanations)} explanations, {len(masks)} masks and "
                          f"{len(images)} image names")
    return [score_one(model, e, names, mask, options, name)
            for e, mask, name in zip(explanations, masks, images)]


def score_one(model, e, names, mask, options, image: str) -> dict:
    """The record of one explanation scored with the metrics ``names``. A detector's box is
    scored on its own score (deletion, insertion: the box's confidence) and, without ``mask``,
    with its own box as the region (the pointing game per box); a segmenter's region on the
    sum of its logits."""
    from ..explainers.dense import box_mask, view_of

    d = e.to_dict()
    rec = {"image": image, "method": e.method, "target": d["target"], "label": d["label"],
           "score": d["score"], "box": d["box"], "region": d["region"], "params": d["params"],
           "timings": {}, "metrics": {}, "details": {}}
    if mask is None:  # a box is its own region: the pointing game of that box
        mask = box_mask(e, model.input.size)
    model, e = view_of(model, e)  # a box's or a region's score, as a class of one
    for name in names:
        t = time.perf_counter()
        s = registry.get(name)(model, e, mask, **options.get(name, {}))
        rec["timings"][name] = round(time.perf_counter() - t, 6)
        plain = s.to_dict()
        rec["metrics"][name] = plain["value"]
        rec["details"][name] = plain["details"]
    return rec


def interval(values) -> tuple[float, float, float, int]:
    """Mean and 95 % confidence interval (Student's t) of the finite ``values``; NaN if none."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n == 1:
        return mean, float("nan"), float("nan"), 1
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def summarize(records: list[dict]) -> list[dict]:
    """One row per method and metric: ``method, metric, n, mean, low, high, higher_is_better``."""
    rows = []
    methods = list(dict.fromkeys(r["method"] for r in records))
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    for method in methods:
        for m in metrics:
            vals = [r["metrics"].get(m) for r in records if r["method"] == method]
            mean, low, high, n = interval(vals)
            rows.append({"method": method, "metric": m, "n": n, "mean": mean, "low": low,
                         "high": high, "higher_is_better": registry.get(m).higher_is_better})
    return rows


def cell(row: dict) -> str:
    """``0.123 [0.101, 0.145]`` (or ``-`` where no image had the metric)."""
    if row["n"] == 0:
        return "-"
    if not math.isfinite(row["low"]):
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"


def table_rows(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The summary as a method x metric grid: ``(headers, rows)``."""
    metrics = list(dict.fromkeys(r["metric"] for r in summary))
    arrows = {m: "↑" if registry.get(m).higher_is_better else "↓" for m in metrics}
    by = {(r["method"], r["metric"]): r for r in summary}
    methods = list(dict.fromkeys(r["method"] for r in summary))
    return (["method", *[f"{m} {arrows[m]}" for m in metrics]],
            [[meth, *[cell(by[(meth, m)]) for m in metrics]] for meth in methods])


def _none(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write_json(path, records: list[dict], summary: list[dict], **meta) -> Path:
    """``{"summary": [...], "records": [...], **meta}`` as JSON (NaN written as null)."""
    doc = {**meta, "summary": [{k: _none(v) for k, v in r.items()} for r in summary],
           "records": records}
    return _write(path, json.dumps(doc, indent=1, allow_nan=False))


def write_csv(path, summary: list[dict]) -> Path:
    """The summary, one row per method and metric."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "metric", "n", "mean", "ci95_low", "ci95_high", "higher_is_better"])
    for r in summary:
        w.writerow([r["method"], r["metric"], r["n"], *(_fmt(r[k]) for k in ("mean", "low",
                                                                              "high")),
                    str(r["higher_is_better"]).lower()])
    return _write(path, buf.getvalue())


def write_records_csv(path, records: list[dict]) -> Path:
    """One row per image and method (per box of a detector: its ``box`` as ``x0 y0 x1 y1``):
    image, method, target, label, score, box and each metric."""
    import io

    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "method", "target", "label", "score", "box", *metrics])
    for r in records:
        box = r.get("box")
        w.writerow([r["image"], r["method"], r["target"], r["label"], _fmt(r["score"]),
                    "" if box is None else " ".join(f"{v:g}" for v in box),
                    *(_fmt(r["metrics"].get(m)) for m in metrics)])
    return _write(path, buf.getvalue())


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v))


def _write(path, text: str) -> Path:
    path = Path(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise OnnxvizError(f"cannot write {path}: {e.strerror or e}") from None
    return path
