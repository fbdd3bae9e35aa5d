"""What the gate records about a model, and the baseline folder that keeps it.

A baseline folder holds ``manifest.json`` and ``maps/<image>.<method>.npy`` (float32 heatmaps at
the model's input size), plus ``masks/<image>.npy`` (regions of interest, at the image's own size)
when the snapshot was given masks. The manifest lists the model file (name, SHA-256), the
methods with their options, the metric options, the images (name, source, SHA-256 of the pixels)
and one record per image and method: the fields of :class:`onnxviz.results.Record` (image, method,
target, label, score) with the options given (``params``), the seconds of the explanation and of
each metric (``timings``), the metrics, the top-1 prediction, the share of attribution outside the
region, and the map's file.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import OnnxvizError, OptionError
from ..results import Record

#: The fields of a record that a baseline keeps as they are (``params`` and ``timings`` are the
#: gate's own: the options given, the seconds of the explanation and of each metric).
RECORD_FIELDS = ("image", "method", "target", "label", "score")

MANIFEST = "manifest.json"
FORMAT = 1


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_pixels(image: np.ndarray) -> str:
    """SHA-256 of an image's shape and pixel bytes (the file's encoding does not matter)."""
    a = np.ascontiguousarray(image)
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()


def observe(model, images, names, methods: dict[str, dict], *, targets=None, masks=None,
            metric_options=None, metric_names=("deletion",), progress=None) -> list[dict]:
    """Explain and measure every image with every method: the records the gate compares.

    Args:
        model: the :class:`onnxviz.Model`.
        images: (H, W, 3) uint8 images.
        names: a name per image.
        methods: ``{method: options}``.
        targets: ``{(name, method, item): target}`` to explain (the baseline's,
            :func:`target_of`; ``item`` None for a classifier); default the top-1 class, every
            detection, every predicted region.
        masks: a boolean region per image (any resolution) or None.
        metric_options: ``{metric: {option: value}}``.
        metric_names: metrics recorded per map.
        progress: called once per image and method.

    Returns:
        Records with ``map`` (float32 array) and ``prediction`` added to the usual fields; for
        a detector or a segmenter one per box or region, with ``item`` (``box<K>``, or the
        region's class), ``box`` or ``region``, and as ``prediction`` what the model finds there.
    """
    from .. import metrics
    from ..explainers.dense import explainer as explainer_of
    from ..metrics._common import region
    from ..metrics.localisation import inside_share

    masks = [None] * len(images) if masks is None else masks
    dense = model.task != "classify"
    preds = model.predict(list(images)) if dense else model.predict(list(images), top=1)
    out = []
    for method, params in methods.items():
        explainer = explainer_of(model, method, params)
        for name, image, pred, mask in zip(names, images, preds, masks):
            for item, e in _explained(model, explainer, name, image, targets):
                scored = metrics.evaluate(model, [e], list(metric_names), masks=[None],
                                          options=metric_options, images=[name])[0]
                rec = Record.of(name, e).to_dict(RECORD_FIELDS)
                rec.update(params=params, timings=scored["timings"], metrics=scored["metrics"])
                m = region(mask, e.heatmap.shape)
                outside = None
                if m is not None and m.any():
                    outside = 1.0 - inside_share(np.asarray(e.heatmap, np.float64), m)
                    outside = None if not np.isfinite(outside) else float(outside)
                if dense:
                    rec.update(item=item, box=e.box, region=e.region,
                               prediction=_found(pred, e))
                else:
                    p = pred[0]
                    rec.update(prediction={"index": p.index, "label": p.label,
                                           "probability": p.probability})
                rec.update(map=np.asarray(e.heatmap, np.float32), outside=outside)
                rec["timings"]["explain"] = round(float(e.timings.get("total", 0.0)), 6)
                rec["timings"]["total"] = round(sum(rec["timings"].values()), 6)
                out.append(rec)
            if progress:
                progress()
    return out


def _explained(model, explainer, name, image, targets):
    """``(item, Explanation)`` of one image and method: ``(None, e)`` for a classifier (its
    baseline's class, or the top-1); for a detector ``("box<K>", e)`` per detection, or per
    baseline box (``targets[(name, method, item)]``: the box and its class, matched to the new
    model's best-overlapping candidate); for a segmenter ``(<class>, e)`` per region."""
    method = explainer.name
    if model.task == "classify":
        target = None if targets is None else targets.get((name, method))
        return [(None, e) for e in explainer.explain([image], target=target)]
    if targets is None:
        found = explainer.explain([image], target=None)
        return [(f"box{k}" if e.box is not None else e.label, e) for k, e in enumerate(found)]
    out = []
    for (n, m, item), t in targets.items():
        if n == name and m == method and item is not None:
            (e,) = explainer.explain([image], target=t)
            out.append((item, e))
    return out


def _found(pred, e) -> dict:
    """What the model predicts where ``e`` is (``pred``: its prediction of the image): for a
    box, the detection of its class that overlaps it most (``None`` when none does); for a
    region, the area its class covers."""
    if e.box is None:
        area = float(next((c["area"] for c in pred.records() if c["class"] == e.target), 0.0))
        return {"index": int(e.target), "label": e.label, "area": area}
    from ..detection.boxes import box_iou

    same = np.flatnonzero(pred.class_id == e.target)
    if not len(same):
        return {"index": int(e.target), "label": e.label, "box": None, "iou": 0.0}
    ious = box_iou(np.asarray([e.box], np.float32), pred.xyxy[same])[0]
    k = int(same[int(np.argmax(ious))])
    return {"index": int(e.target), "label": e.label,
            "box": [round(float(v), 2) for v in pred.xyxy[k]], "iou": float(ious.max())}


def target_of(record: dict):
    """The target that explains a baseline record again: its class, or for a detector's box
    the box and its class, or for a segmenter's region its class."""
    if record.get("box") is not None:
        return {"box": record["box"], "label": record["label"]}
    return record["target"]


def write(folder, model_path, model, names, sources, images, methods, records, *,
          masks=None, metric_options=None) -> Path:
    """Write a baseline folder (see the module docstring); returns the manifest's path."""
    folder = Path(folder)
    try:
        (folder / "maps").mkdir(parents=True, exist_ok=True)
        rows = []
        for r in records:
            item = f".{r['item']}" if r.get("item") else ""
            rel = f"maps/{r['image']}{item}.{r['method']}.npy"
            np.save(folder / rel, r["map"])
            rows.append({k: v for k, v in r.items() if k != "map"} | {"map": rel})
        mask_files = {}
        for name, m in zip(names, masks or []):
            if m is not None:
                (folder / "masks").mkdir(exist_ok=True)
                mask_files[name] = f"masks/{name}.npy"
                np.save(folder / mask_files[name], np.asarray(m, bool))
        from .. import __version__

        doc = {
            "format": FORMAT, "onnxviz": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": {"file": Path(model_path).name if model_path else "",
                      "sha256": sha256_file(model_path) if model_path else "",
                      "input_size": list(model.input.size)},
            "methods": methods, "metric_options": metric_options or {},
            "images": [{"name": n, "source": str(s), "sha256": sha256_pixels(im)}
                       for n, s, im in zip(names, sources, images)],
            "masks": mask_files, "records": rows,
        }
        path = folder / MANIFEST
        path.write_text(json.dumps(doc, indent=1, default=_plain), encoding="utf-8")
    except OSError as e:
        raise OnnxvizError(f"cannot write the baseline into {folder}: {e.strerror or e}") from None
    return path


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, set)):
        return list(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return repr(v)


def read(folder) -> dict:
    """Read a baseline folder: the manifest with each record's ``map`` loaded and ``masks`` as
    ``{name: bool array}``. A missing or damaged baseline is an :class:`OptionError`."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise OptionError(f"no baseline in {folder} (expected {path}; make one with "
                          "onnxviz snapshot)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise OptionError(f"{path}: baseline format {doc.get('format')!r}, this onnxviz "
                              f"reads format {FORMAT}")
        for r in doc["records"]:
            r["map"] = np.load(folder / r["map"], allow_pickle=False)
        doc["masks"] = {n: np.load(folder / f, allow_pickle=False)
                        for n, f in doc.get("masks", {}).items()}
        doc["methods"], doc["images"] = dict(doc["methods"]), list(doc["images"])
    except OptionError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OptionError(f"baseline {folder} is damaged: {type(e).__name__}: {e}") from None
    return doc
