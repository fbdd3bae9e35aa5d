"""Foundation overhead: onnxviz's load/preprocess/forward against bare ONNX Runtime (the floor).

    python benchmarks/runtime.py [--quick] [--model onnxviz/data/models/efficientnet_lite0.onnx]

Rows: loading (onnxviz.load: check + normalize + shape inference + session, vs a bare
InferenceSession), preprocessing (read + resize + normalize), and forward passes of N images through
``Model.forward`` (batched by run_batched) vs one bare ``InferenceSession.run`` on the same tensor.
Numbers are indicative: the machine may be shared.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import onnxviz as ov
from onnxviz import runtime

ROOT = Path(__file__).resolve().parents[1]


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"))
    ap.add_argument("--quick", action="store_true", help="few images and repeats (smoke run)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    n, repeat = (4, 2) if args.quick else (32, 5)

    rows = []
    m = ov.load(args.model, threads=args.threads)
    t_load = best(lambda: ov.load(args.model, threads=args.threads), repeat)

    def bare_session():
        so = runtime._options(args.threads)
        return ort.InferenceSession(args.model, sess_options=so,
                                    providers=runtime.default_providers())

    t_bare = best(bare_session, repeat)
    rows.append(("load", "onnxviz.load", t_load, "InferenceSession()", t_bare))

    photos = ["skimage:chelsea", "skimage:coffee", "skimage:astronaut", "skimage:rocket"]
    images = [ov.read_image(p) for p in photos] * (n // 4)
    t_pre = best(lambda: m.preprocess(images), repeat)
    rows.append((f"preprocess {len(images)} photos", "Model.preprocess", t_pre, "-", float("nan")))

    x = m.preprocess(images)
    sess = bare_session()
    name = sess.get_inputs()[0].name
    floor = best(lambda: sess.run([m.score_output], {name: x}), repeat)
    ours = best(lambda: m.forward(x), repeat)
    rows.append((f"forward {len(images)} images", "Model.forward", ours, "session.run", floor))
    ours1 = best(lambda: m.forward(x, batch_size=1), repeat)
    rows.append((f"forward {len(images)} images, batch 1", "Model.forward", ours1, "session.run",
                 floor))

    print(f"model: {args.model}   images: {len(images)}   best of {repeat}")
    print(f"{'case':34} {'ours':18} {'ms':>9}   {'floor':20} {'ms':>9}  ratio")
    for case, a, ta, b, tb in rows:
        ratio = ta / tb if np.isfinite(tb) else float("nan")
        print(f"{case:34} {a:18} {1e3 * ta:9.1f}   {b:20} {1e3 * tb:9.1f}  {ratio:5.2f}")


if __name__ == "__main__":
    main()
