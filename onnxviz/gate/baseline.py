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
        targets: ``{(name, method): class}`` to explain (the baseline's); default top-1.
        masks: a boolean region per image (any resolution) or None.
        metric_options: ``{metric: {option: value}}``.
        metric_names: metrics recorded per map.
        progress: called once per image and method.

    Returns:
        Records with ``map`` (float32 array) and ``prediction`` added to the usual fields.
    """
    from .. import metrics
    from ..explainers.registry import get
    from ..metrics._common import region
    from ..metrics.localisation import inside_share

    masks = [None] * len(images) if masks is None else masks
    preds = model.predict(list(images), top=1)
    out = []
    for method, params in methods.items():
        explainer = get(method)(model, **params)
        for name, image, pred, mask in zip(names, images, preds, masks):
            target = None if targets is None else targets.get((name, method))
            (e,) = explainer.explain([image], target=target)
            scored = metrics.evaluate(model, [e], list(metric_names), masks=[None],
                                      options=metric_options, images=[name])[0]
            rec = Record.of(name, e).to_dict(RECORD_FIELDS)
            rec.update(params=params, timings=scored["timings"], metrics=scored["metrics"])
            m = region(mask, e.heatmap.shape)
            outside = None
            if m is not None and m.any():
                outside = 1.0 - inside_share(np.asarray(e.heatmap, np.float64), m)
                outside = None if not np.isfinite(outside) else float(outside)
            p = pred[0]
            rec.update(prediction={"index": p.index, "label": p.label,
                                   "probability": p.probability},
                       map=np.asarray(e.heatmap, np.float32), outside=outside)
            rec["timings"]["explain"] = round(float(e.timings.get("total", 0.0)), 6)
            rec["timings"]["total"] = round(sum(rec["timings"].values()), 6)
            out.append(rec)
            if progress:
                progress()
    return out


def write(folder, model_path, model, names, sources, images, methods, records, *,
          masks=None, metric_options=None) -> Path:
    """Write a baseline folder (see the module docstring); returns the manifest's path."""
    folder = Path(folder)
    try:
        (folder / "maps").mkdir(parents=True, exist_ok=True)
        rows = []
        for r in records:
            rel = f"maps/{r['image']}.{r['method']}.npy"
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
