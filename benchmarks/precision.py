"""Occlusion on the int8 and float16 forms of a model vs its float32 file vs each file's floor.

One row per form (made with ``onnxviz.convert.quantize`` from ``--model``, default EfficientNet-Lite0;
calibration on four skimage photos): occlusion images/s (patch 32, stride 8: 625 occluded images
+ 1, one 224x224 photo), and the floor: bare ONNX Runtime on the same number of images at the same
batch size (prepared beforehand), with each file's own session. Same threads everywhere (2).
One run each (the machine is shared: read ratios, not absolute numbers)::

    python benchmarks/precision.py [--model onnxviz/data/models/efficientnet_lite0.onnx] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FORMS = ("float32", "dynamic", "qdq", "qoperator", "fp16", "fp16-io32", "mixed")


def main(argv=None) -> int:
    import onnxruntime as ort
    import skimage.data

    import onnxviz as ov
    from onnxviz.convert.quantize import quantize

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS),
                   help="the forms to measure (default: all)")
    args = p.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(),
              skimage.data.rocket()]
    print(f"| form | precision | gradients | occlusion img/s | floor img/s | onnxviz/floor | "
          f"vs float32 |\n|---|---|---|---|---|---|---|")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for form in args.forms:
            path = Path(args.model)
            if form != "float32":
                path = Path(tmp) / f"{form}.onnx"
                quantize(args.model, path, form, images=photos)
            m = ov.load(path, threads=args.threads, batch_size=args.batch_size)
            px = m.to_pixels(photos[0])[0]
            t = time.perf_counter()
            e = ov.explain(m, px, method="occlusion", patch=32, stride=8,
                           batch_size=args.batch_size)
            rate = e.extras["forwards"] / (time.perf_counter() - t)
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            x = np.repeat(m.preprocess(px), e.extras["forwards"], axis=0).astype(m.input.dtype)
            step = 1 if m.fixed_batch else args.batch_size
            t = time.perf_counter()
            for k in range(0, len(x), step):
                sess.run(None, {m.input.name: x[k:k + step]})
            floor = len(x) / (time.perf_counter() - t)
            base = base or rate
            print(f"| {form} | {m.precision.describe()} | {m.gradient_mode} | {rate:.0f} | "
                  f"{floor:.0f} | {rate / floor:.2f} | {rate / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
