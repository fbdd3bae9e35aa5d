"""Images per second of Grad-CAM and occlusion over a folder: one process, Ray with 1 and 2
workers, and the bare ONNX Runtime floor, in one run.

Rows per case (:data:`CASES`: Grad-CAM and occlusion with their defaults, and a fine occlusion;
the bundled 64 x 64 shapes model; generated 48 x 48 images):

- ``floor``: bare ``InferenceSession.run`` of the forward passes the method needs (one an image for
  Grad-CAM, ``extras["forwards"]`` an image for occlusion), batch 32, inputs made beforehand;
- ``single process``: what ``onnxviz explain --engine local`` does: read, explain one image at a
  time, write the three PNGs; with ONNX Runtime's default threads (all cores), and with one
  thread, the pace one actor can at best reach;
- ``ray, N workers``: :func:`onnxviz.distributed.explain_dataset` into a fresh folder (read with
  Ray Data, explain in the actor pool, PNGs and Parquet parts), on a local cluster of this
  machine's CPUs started once beforehand. ``seconds`` includes starting the actors; ``first s``
  is when the first batch came back, and ``steady`` the pace after it
  (``RunSummary.steady_images_per_s``).

Also printed: each actor's peak resident memory and the model bytes put in the object store.
Run from the repository root::

    python benchmarks/scale.py                 # 500 images
    python benchmarks/scale.py --quick         # 60 images, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (row name, method, options): the two methods with their defaults (on 64 x 64 occlusion makes
#: 26 forward passes an image), and a fine occlusion (patch 8, stride 4: 226 passes), where the
#: work an image outweighs Ray's fixed costs.
CASES = (("gradcam", "gradcam", {}), ("occlusion", "occlusion", {}),
         ("occl. fine", "occlusion", {"patch": 8, "stride": 4}))


def make_images(folder: Path, n: int) -> list[str]:
    from tests.distributed.helpers import write_images

    return sorted(write_images(folder, n, seed=1))


def floor(m, forwards: int, batch: int = 32) -> float:
    """Seconds of bare ONNX Runtime forward passes: ``forwards`` images in batches of ``batch``."""
    sess = m.session()
    x = np.random.default_rng(0).random((batch, *m.input.shape), dtype=np.float32)
    t = time.perf_counter()
    for start in range(0, forwards, batch):
        sess.run([m.score_output], {m.input.name: x[: min(batch, forwards - start)]})
    return time.perf_counter() - t


def single_process(model_path: str, paths: list[str], method: str, opts: dict, out: Path,
                   threads: int | None = None) -> float:
    """Seconds of the local engine's loop: read, explain, three PNGs an image."""
    import onnxviz as ov
    from onnxviz.explainers.registry import get
    from onnxviz.results import Render, write_explanation_pngs

    m = ov.load(model_path, threads=threads)
    ex = get(method)(m, **opts)
    ex.explain([ov.read_image(paths[0])])  # compiled kernels and warm session, as Ray's actors
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for i, p in enumerate(paths):
        img = ov.read_image(p)
        (e,) = ex.explain([img])
        write_explanation_pngs(out, f"img{i}", img, e, Render())
    return time.perf_counter() - t


def ray_run(model_path, paths, method, opts: dict, out: Path, workers: int):
    from onnxviz.distributed import explain_dataset

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    s = explain_dataset(model_path, paths, out=out, methods=[method], options={method: opts},
                        workers=workers, progress=False)
    wall = time.perf_counter() - t
    assert s.explained == len(paths), s
    return wall, s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="60 images (smoke run)")
    ap.add_argument("--workers", default="1,2", help="Ray pool sizes (default 1,2)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    n = 60 if args.quick else args.images
    pools = [int(w) for w in args.workers.split(",")]

    import ray

    import onnxviz as ov
    from onnxviz.model import loading

    model_path = str(ov.bundled_model("shapes_cnn"))
    work = Path(tempfile.mkdtemp(prefix="onnxviz-scale-"))
    rows = []
    try:
        paths = make_images(work / "images", n)
        m = ov.load(model_path)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
                 object_store_memory=500 * 2**20, _node_ip_address="127.0.0.1",
                 logging_level="warning", log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        model_bytes = len(loading.read(model_path).SerializeToString())
        for case, method, opts in CASES:
            e = ov.explain(m, paths[0], method=method, **opts)
            fl = floor(m, n * int(e.extras.get("forwards", 1)))
            rows.append({"method": case, "how": "floor: bare ORT forward", "seconds": fl,
                         "images_per_s": n / fl})
            for threads in (None, 1):
                single = single_process(model_path, paths, method, opts, work / "single", threads)
                how = "single process" + (", 1 thread" if threads else "")
                rows.append({"method": case, "how": how, "seconds": single,
                             "images_per_s": n / single})
            for w in pools:
                wall, s = ray_run(model_path, paths, method, opts, work / "ray", w)
                peak = max(s.workers.values()) / 2**20
                rows.append({"method": case, "how": f"ray, {w} worker{'s' * (w > 1)}",
                             "seconds": wall, "images_per_s": n / wall,
                             "first_results": s.first_results,
                             "steady_images_per_s": s.steady_images_per_s,
                             "actor_peak_mb": peak})
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    print(f"{n} images, {os.cpu_count()} CPUs, load average {load[0]:.1f} at the end; "
          f"model {model_bytes / 1024:.0f} KB put in the object store once per run")
    print(f"{'method':<10} {'how':<26} {'seconds':>8} {'images/s':>9} {'first s':>8} "
          f"{'steady/s':>9} {'actor MB':>9}")
    for r in rows:
        extra = (f"{r['first_results']:>8.1f} {r['steady_images_per_s']:>9.1f} "
                 f"{r['actor_peak_mb']:>9.0f}") if "first_results" in r else ""
        print(f"{r['method']:<10} {r['how']:<26} {r['seconds']:>8.2f} {r['images_per_s']:>9.1f} "
              f"{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps({"images": n, "cpus": os.cpu_count(),
                                               "load": load, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
