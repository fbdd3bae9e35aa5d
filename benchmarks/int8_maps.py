"""Are the default gradient maps of int8 twins non-blank, and how close to the float model's?

The twins of ``--model`` (default EfficientNet-Lite0): QDQ, QOperator and dynamic, made both by
``onnxviz.convert.quantize`` and by ``onnxruntime.quantization`` directly (its defaults, no
pre-processing), the static forms calibrated on 2 and on 8 skimage photos. On every RGB photo of
``skimage.data``, the default saliency, Grad-CAM and integrated-gradients maps of each twin: how
many are blank (constant), and their median Spearman rank correlation with the float model's map
of the same class (the twin's top class, the default target). Then each QDQ twin with
``gradients="ste"`` forced: its blank maps, and how many of them carry ``extras["blank"]`` and a
``BlankMapWarning``. One Markdown table each::

    python benchmarks/int8_maps.py [--model PATH] [--threads 2] [--methods saliency gradcam ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
METHODS = ("saliency", "gradcam", "integrated_gradients")
CALIBRATION = ("coffee", "chelsea", "astronaut", "rocket", "colorwheel", "hubble_deep_field",
               "immunohistochemistry", "retina")


def rgb_photos() -> dict:
    """Every photo of ``skimage.data`` that is HxWx3 uint8 and needs no download."""
    import skimage.data

    found = {}
    for name in skimage.data.__all__:
        f = getattr(skimage.data, name)
        if not callable(f) or name in ("download_all", "lbp_frontal_face_cascade_filename"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im = f()
        except Exception:  # needs a download, or arguments
            continue
        if isinstance(im, np.ndarray) and im.ndim == 3 and im.shape[-1] == 3 \
                and im.dtype == np.uint8:
            found[name] = im
    return found


class _Reader:
    """onnxruntime's CalibrationDataReader over photos preprocessed by the float model."""

    def __init__(self, model, images):
        x = model.preprocess(list(images))
        self._feeds = iter([{model.input.name: x[k:k + 1]} for k in range(len(x))])

    def get_next(self):
        return next(self._feeds, None)


def make_twins(src: Path, folder: Path, photos: dict, forms) -> dict:
    """{label: path} of the twins (see the module's docstring)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    import onnxviz as ov
    from onnxviz.convert.quantize import quantize

    float_model = ov.load(src)
    meta = onnx.load(str(src)).metadata_props
    twins = {}
    for form in forms:
        for n in ((None,) if form == "dynamic" else (2, 8)):
            calib = [photos[k] for k in CALIBRATION[:n]] if n else None
            tag = f"{form}" + (f", {n} photos" if n else "")
            path = folder / f"onnxviz.{form}.{n}.onnx"
            quantize(src, path, form, images=calib)
            twins[f"onnxviz {tag}"] = path
            path = folder / f"ort.{form}.{n}.onnx"
            if form == "dynamic":
                quantize_dynamic(str(src), str(path))
            else:
                fmt = QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator
                quantize_static(str(src), str(path), _Reader(float_model, calib), quant_format=fmt)
            proto = onnx.load(str(path))  # the onnxviz metadata (preprocessing, labels)
            del proto.metadata_props[:]
            proto.metadata_props.extend(meta)
            onnx.save(proto, str(path))
            twins[f"onnxruntime {tag}"] = path
    return twins


def maps(model, photos: dict, method: str):
    """{photo: Explanation} (default options and target) and the number of BlankMapWarnings."""
    import onnxviz as ov
    from onnxviz.errors import BlankMapWarning

    out, warned = {}, 0
    for name, im in photos.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out[name] = ov.explain(model, im, method)
        warned += sum(issubclass(w.category, BlankMapWarning) for w in caught)
    return out, warned


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a.ravel(), b.ravel())[0])


def main(argv=None) -> int:
    import onnxviz as ov

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model",
                   default=str(ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--forms", nargs="+", choices=("qdq", "qoperator", "dynamic"),
                   default=["qdq", "qoperator", "dynamic"])
    args = p.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    photos = rgb_photos()
    print(f"{len(photos)} RGB photos: {', '.join(photos)}", file=sys.stderr)
    ref = ov.load(args.model, threads=args.threads)
    cache = {}

    def want(method, name, target):  # the float model's map of that class
        key = (method, name, target)
        if key not in cache:
            cache[key] = ov.explain(ref, photos[name], method, target=target).heatmap
        return cache[key]

    rows, ste_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        twins = make_twins(Path(args.model), Path(tmp), photos, args.forms)
        for label, path in twins.items():
            m = ov.load(path, threads=args.threads)
            cells = []
            for method in args.methods:
                got, _ = maps(m, photos, method)
                blank = sum(np.ptp(e.heatmap) == 0 for e in got.values())
                rho = np.median([spearman(e.heatmap, want(method, k, e.target))
                                 for k, e in got.items()])
                cells.append(f"{blank} | {rho:.2f}")
            rows.append(f"| {label} | {m.gradient_mode} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr)
            if m.precision.quantization != "qdq":
                continue
            m.gradient_mode = "ste"
            cells = []
            for method in args.methods:
                got, warned = maps(m, photos, method)
                blank = sum(np.ptp(e.heatmap) == 0 for e in got.values())
                flagged = sum(bool(e.extras.get("blank")) for e in got.values())
                cells.append(f"{blank} | {flagged} | {warned}")
            ste_rows.append(f"| {label} | " + " | ".join(cells) + " |")
            print(ste_rows[-1], file=sys.stderr)
    n = len(photos)
    print(f"\nDefault options and target, {n} photos: blank maps, median Spearman correlation "
          "with the float model's map of the same class\n")
    print("| twin | gradients | " + " | ".join(f"{m} blank | {m} rho" for m in args.methods)
          + " |\n|---|---|" + "---|---|" * len(args.methods))
    print("\n".join(rows))
    print(f"\n`gradients=\"ste\"` forced on the QDQ twins, {n} photos: blank maps, flagged, "
          "warned\n")
    print("| twin | " + " | ".join(f"{m} blank | flagged | warned" for m in args.methods)
          + " |\n|---|" + "---|---|---|" * len(args.methods))
    print("\n".join(ste_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
