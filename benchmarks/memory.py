"""Peak memory of the work the hardening issue measured, against the memory budget.

Each row runs ``onnxviz`` as a child process and reads its peak RSS from the kernel
(``os.wait4``): the budget (``ONNXVIZ_MEMORY_BUDGET``) sizes the ONNX Runtime batches, so peak
memory follows the budget, not the requested batch size or the number of images::

    python benchmarks/memory.py [--photos 200] [--budgets 1G,4G]

Rows:
- occlusion on a CNN with a 1024x1024 input (patch 128, stride 64: 225 occluded images),
  at the requested batch size 256;
- a folder of large photos (2000x1500 JPEGs, generated) explained with saliency: images are
  decoded one at a time;
- stride-1 occlusion (MATLAB's ``occlusionSensitivity`` default stride) on the bundled 64x64
  shapes CNN: 2,402 images through the model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


class _Popen(subprocess.Popen):
    peak = 0

    def _try_wait(self, wait_flags):
        pid, sts, usage = os.wait4(self.pid, wait_flags)
        if pid == self.pid:
            self.peak = usage.ru_maxrss * 1024
        return pid, sts


def run(argv, budget: str, cwd) -> tuple[int, float, float, str]:
    env = {**os.environ, "ONNXVIZ_MEMORY_BUDGET": budget}
    t = time.perf_counter()
    p = _Popen([sys.executable, "-m", "onnxviz.cli", *argv], cwd=cwd, env=env,
               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = p.communicate()
    return p.returncode, p.peak / 2**30, time.perf_counter() - t, err.strip().splitlines()[-1:]


def big_cnn(path: Path, side: int = 1024) -> None:
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    k1 = nh.from_array((rng.standard_normal((16, 3, 3, 3)) * 0.2).astype(np.float32), "k1")
    k2 = nh.from_array((rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32), "k2")
    w = nh.from_array(rng.standard_normal((32, 10)).astype(np.float32), "w")
    nodes = [h.make_node("Conv", ["x", "k1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "k2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("GlobalAveragePool", ["r2"], ["p"]),
             h.make_node("Flatten", ["p"], ["f"]), h.make_node("MatMul", ["f", "w"], ["y"])]
    g = h.make_graph(nodes, "big", [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, side, side])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["N", 10])], [k1, k2, w])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def photos(folder: Path, n: int) -> None:
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    base = (rng.random((150, 200, 3)) * 255).astype(np.uint8)
    big = cv2.resize(base, (2000, 1500), interpolation=cv2.INTER_CUBIC)
    for i in range(n):
        cv2.imwrite(str(folder / f"photo{i:03d}.jpg"), np.roll(big, i, axis=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--budgets", default="1G,4G")
    args = ap.parse_args(argv)
    from onnxviz.data import bundled_model

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        big_cnn(d / "big.onnx")
        photos(d / "photos", args.photos)
        shapes = str(bundled_model("shapes_cnn"))
        cases = [
            ("occlusion, 1024x1024-input CNN, --batch-size 256",
             ["explain", "big.onnx", "skimage:astronaut", "-m", "occlusion", "--patch", "128",
              "--stride", "64", "--batch-size", "256", "--preprocess", "unit", "--out", "o",
              "-q"]),
            (f"saliency, folder of {args.photos} photos 2000x1500",
             ["explain", shapes, "photos", "-m", "saliency", "--out", "o2", "-q"]),
            (f"report, folder of {args.photos} photos 2000x1500",
             ["report", shapes, "photos", "-m", "saliency", "--out", "r", "-q"]),
            ("stride-1 occlusion, shapes CNN 64x64 (2,402 images)",
             ["explain", shapes, "skimage:chelsea", "-m", "occlusion", "--patch", "16",
              "--stride", "1", "--out", "o3", "-q"]),
        ]
        print(f"{'work':<52} {'budget':>6} {'peak RSS':>9} {'seconds':>8}  status")
        for name, cmd in cases:
            for budget in args.budgets.split(","):
                code, peak, secs, last = run(cmd, budget, d)
                status = "ok" if code == 0 else f"exit {code}: {last}"
                print(f"{name:<52} {budget:>6} {peak:>7.2f} G {secs:>8.1f}  {status}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
