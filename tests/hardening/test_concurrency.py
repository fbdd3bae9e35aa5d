"""Concurrent first use: 8 threads released together explain with one fresh model (each method's
first use at the same moment: ONNX Runtime sessions, gradient graphs, the shape probe, Numba's
kernels), in rotated orders with ``predict`` after each. Each run is a fresh process with
``faulthandler`` on; its maps and predictions must equal those of one thread doing the same."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.conftest import FIXTURES_DIR, MODELS_DIR, REPO_ROOT

#: The file of the issue's reproducer (a Keras CNN exported by tf2onnx, NHWC 32 x 32); the
#: bundled Keras model, exported the same way, where the shared fixtures are absent.
MODEL = FIXTURES_DIR / "tf2onnx_cifar_small.onnx"
if not MODEL.exists():
    MODEL = MODELS_DIR / "shapes_keras.onnx"
THREADS = 8
RUNS = 3

_CHILD = r"""
import faulthandler, sys, threading
faulthandler.enable()
import numpy as np
import onnxviz as ov

model_path, threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = ov.load(model_path, preprocess="unit")
side = m.input.size
img = (np.random.default_rng(0).random((*side, 3)) * 255).astype(np.uint8)
calls = [("gradcam", {}), ("saliency", {}), ("scorecam", {}), ("rise", {"num_masks": 60}),
         ("lime", {"num_samples": 60, "segmentation": "grid"})]
barrier = threading.Barrier(threads)
results, errors = {}, []

def work(k):
    try:
        barrier.wait()
        for name, options in calls[k % 5:] + calls[:k % 5]:
            e = ov.explain(m, img, name, **options)
            p = m.predict(img, top=3)
            results[f"{k}/{name}"] = np.asarray(e.heatmap, np.float64)
            results[f"{k}/{name}/predict"] = np.array([[q.index, q.score] for q in p])
    except BaseException as e:
        errors.append(f"{type(e).__name__}: {e}")

pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
if errors:
    sys.exit("; ".join(errors))
np.savez(out, **results)
"""


def _run(threads: int, out) -> dict:
    p = subprocess.run([sys.executable, "-c", _CHILD, str(MODEL), str(threads), str(out)],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"exit status {p.returncode}:\n{p.stderr[-4000:]}"
    with np.load(out) as f:
        return dict(f)


def test_concurrent_first_use_gives_the_single_thread_results(tmp_path):
    single = _run(1, tmp_path / "single.npz")
    want = {key.split("/", 1)[1]: value for key, value in single.items()}
    assert len(want) == 10
    for run in range(RUNS):
        got = _run(THREADS, tmp_path / f"threads{run}.npz")
        assert len(got) == THREADS * len(want)
        for key, value in got.items():
            np.testing.assert_allclose(value, want[key.split("/", 1)[1]], rtol=1e-5, atol=1e-6,
                                       err_msg=f"run {run}: {key}")
