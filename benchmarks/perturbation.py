"""Perturbation explainers on EfficientNet-Lite0: onnxviz vs Captum / lime vs the floor.

Rows (seconds, lower is better; one 224x224 photo):

- Occlusion, patch 32, stride 8 (625 patches): onnxviz vs Captum ``Occlusion``
  (``perturbations_per_eval=16``) on the torch original vs the floor;
- LIME, 1000 samples (quickshift superpixels): onnxviz vs lime's ``LimeImageExplainer`` driving
  the same ONNX Runtime session vs the floor;
- RISE, 1000 masks: onnxviz vs the floor;
- the generators alone (no model) vs the equivalent numpy code;
- MATLAB's stride-1 run (71x71 gray patch centred on each of the 50,176 pixels), in a subprocess:
  wall time and peak RSS (``ru_maxrss``).

The floor is bare ONNX Runtime inference of the same number of images at the same batch size
(the images themselves are prepared beforehand, outside the timing). Everything runs on the same
number of threads (2 by default). Run from the repository root::

    python benchmarks/perturbation.py            # full (the MATLAB-scale run takes a while)
    python benchmarks/perturbation.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"


def clock(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def paired(ours_fn, floor_fn, repeat: int):
    """Alternate onnxviz and the floor ``repeat`` times; on a shared machine the ratio of runs
    made back to back is steadier than either time.

    Returns:
        (median onnxviz s, median floor s, median of the paired ratios, last onnxviz result).
    """
    ours, floors, out = [], [], None
    for _ in range(repeat):
        t, out = clock(ours_fn)
        ours.append(t)
        floors.append(floor_fn())
    ratio = float(np.median(np.divide(ours, floors)))
    return float(np.median(ours)), float(np.median(floors)), ratio, out


def photo():
    import cv2
    import skimage.data

    return cv2.resize(skimage.data.chelsea(), (224, 224), interpolation=cv2.INTER_LINEAR)


def softmax(s):
    s = np.asarray(s, np.float64)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def floor(m, n: int, batch: int) -> float:
    """Bare ``InferenceSession.run`` over ``n`` images in chunks of ``batch`` (inputs ready)."""
    sess = m.session()
    x = np.random.default_rng(0).standard_normal((batch, *m.input.shape)).astype(np.float32)
    t = time.perf_counter()
    for start in range(0, n, batch):
        sess.run([m.score_output], {m.input.name: x[: min(batch, n - start)]})
    return time.perf_counter() - t


def occlusion_rows(m, img, args, rows):
    import torch
    from captum.attr import Occlusion

    from models.build_efficientnet import torch_model

    stride = 32 if args.quick else 8
    bs = 16
    ov_opts = dict(method="occlusion", patch=32, stride=stride, fill="gray", batch_size=bs)
    n = ((224 - 32) // stride + 1) ** 2
    import onnxviz as ov

    ov.explain(m, img, method="occlusion", patch=112, stride=112, batch_size=bs)  # warm-up
    ours, fl, ratio, e = paired(lambda: ov.explain(m, img, **ov_opts), lambda: floor(m, n, bs),
                                args.repeat)
    net = torch_model()
    x = torch.from_numpy(m.normalize(img[None]))
    base = torch.from_numpy(m.normalize(np.full((1, 224, 224, 3), 128, np.float32)))
    occ = Occlusion(lambda t: torch.softmax(net(t), dim=1))
    with torch.no_grad():
        net(x)
        peer, attr = clock(lambda: occ.attribute(
            x, sliding_window_shapes=(3, 32, 32), strides=(3, stride, stride), baselines=base,
            target=e.target, perturbations_per_eval=bs))
    diff = float(np.abs(attr[0].mean(0).numpy() - e.heatmap).max())
    rows.append((f"occlusion 32/{stride} ({n} patches)", ours, "Captum", peer, fl, ratio,
                 f"<=1.10x floor, >=4x Captum; max |diff| {diff:.1e}"))


def lime_rows(m, img, args, rows):
    from lime import lime_image

    import onnxviz as ov

    n = 100 if args.quick else 1000
    bs = 16
    ov.explain(m, img, method="lime", num_samples=bs, batch_size=bs)  # warm-up
    ours, fl, ratio, e = paired(
        lambda: ov.explain(m, img, method="lime", num_samples=n, batch_size=bs),
        lambda: floor(m, n, bs), args.repeat)
    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=0)

    def classifier_fn(images):
        return softmax(m.forward(m.normalize(images), batch_size=bs))

    def quiet(it, *a, **k):  # lime wraps its sample loop in tqdm; keep the table readable
        return it

    lime_image.tqdm, saved = quiet, lime_image.tqdm
    try:
        peer, _ = clock(lambda: explainer.explain_instance(
            img, classifier_fn, top_labels=5, num_samples=n, batch_size=bs, random_seed=0))
    finally:
        lime_image.tqdm = saved
    rows.append((f"LIME {n} samples", ours, "lime", peer, fl, ratio,
                 f"<=1.10x floor, faster than lime; {e.extras['num_segments']} superpixels, "
                 f"quickshift {e.timings['segment']:.2f} s"))


def rise_rows(m, img, args, rows):
    import onnxviz as ov

    n = 100 if args.quick else 1000
    bs = 16
    ov.explain(m, img, method="rise", num_masks=bs, batch_size=bs)  # warm-up
    ours, fl, ratio, _ = paired(
        lambda: ov.explain(m, img, method="rise", num_masks=n, batch_size=bs),
        lambda: floor(m, n + 1, bs), args.repeat)
    rows.append((f"RISE {n} masks", ours, "", None, fl, ratio, ""))


def generator_rows(args, out):
    """The batch generators alone against the numpy (and lime) code doing the same work."""
    from onnxviz.perturb import (
        grid_segments, lime_batch, mask_params, occlusion_batch, patch_grid, rise_masks,
        sample_matrix,
    )

    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 224, 224)).astype(np.float32)
    base = np.zeros_like(x0)
    bs = 16
    buf = np.empty((bs, 3, 224, 224), np.float32)
    rects, _ = patch_grid((224, 224), 32, 8)
    total = len(rects) + 1

    def occ_numba():
        for s in range(0, total, bs):
            occlusion_batch(x0, base, rects, s, buf[: min(bs, total - s)], False)

    def occ_numpy():
        for s in range(0, total, bs):
            b = buf[: min(bs, total - s)]
            b[:] = x0
            for j in range(len(b)):
                if s + j:
                    y0, xa, y1, xb = rects[s + j - 1]
                    b[j, :, y0:y1, xa:xb] = base[:, y0:y1, xa:xb]

    n = 200 if args.quick else 1000
    seg = grid_segments((224, 224), 50)
    keep = sample_matrix(n, 50, 0)
    px = rng.integers(0, 256, (224, 224, 3)).astype(np.uint8)
    fudged = px.copy()

    def lime_numba():
        for s in range(0, n, bs):
            lime_batch(x0, base, seg, keep, s, buf[: min(bs, n - s)], False)

    def lime_numpy():
        for s in range(0, n, bs):
            k = keep[s: s + bs].astype(bool)[:, seg]  # (b, H, W)
            np.copyto(buf[: len(k)], np.where(k[:, None], x0, base))

    def lime_loop():  # lime_image.LimeImageExplainer.data_labels, per sample and per superpixel
        for row in keep:
            temp = px.copy()
            mask = np.zeros(seg.shape, bool)
            for z in np.where(row == 0)[0]:
                mask[seg == z] = True
            temp[mask] = fudged[mask]

    nm = 128 if args.quick else 1000
    grids, shifts, cell = mask_params(nm, 7, 0.5, (224, 224), 0)
    mbuf = np.empty((bs, 224, 224), np.float32)

    def rise_numba():
        for s in range(0, nm, bs):
            rise_masks(grids, shifts, cell, s, mbuf[: min(bs, nm - s)])

    def rise_numpy():  # the reference implementation: skimage resize per mask
        from skimage.transform import resize

        up = 8 * cell
        for i in range(nm):
            dy, dx = shifts[i]
            mbuf[i % bs] = resize(grids[i], up, order=1, mode="reflect",
                                  anti_aliasing=False)[dy:dy + 224, dx:dx + 224]

    for fn in (occ_numba, lime_numba, rise_numba):
        fn()  # compile / load the cached kernels
    out.append((f"occlusion {total} samples", clock(occ_numba)[0], "numpy", clock(occ_numpy)[0]))
    out.append((f"LIME {n} samples", clock(lime_numba)[0], "numpy where", clock(lime_numpy)[0]))
    out.append((f"LIME {n} samples", clock(lime_numba)[0], "lime's loop", clock(lime_loop)[0]))
    out.append((f"RISE {nm} masks", clock(rise_numba)[0], "skimage resize", clock(rise_numpy)[0]))


def matlab_child(stride: int, threads: int) -> None:
    """Runs in the subprocess: MATLAB's occlusionSensitivity setting, then reports."""
    import onnxviz as ov

    m = ov.load(MODEL, threads=threads)
    t, e = clock(lambda: ov.explain(m, photo(), method="occlusion", patch=71, stride=stride,
                                    fill="gray", edges="center", batch_size=32))
    hwm = [line for line in Path("/proc/self/status").read_text().splitlines()
           if line.startswith("VmHWM:")]
    rss = int(hwm[0].split()[1]) / 1024 if hwm else float("nan")  # this process image only
    print(f"{e.extras['forwards'] - 1} {t:.2f} {rss:.0f}")


def matlab_row(args):
    stride = 8 if args.quick else 1
    cmd = [sys.executable, __file__, "--matlab-child", str(stride), "--threads", str(args.threads)]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    n, run_s, hwm = res.stdout.split()[-3:]
    # ru_maxrss of a child also counts the parent image it was forked from, so this runs
    # before the parent imports anything heavy; VmHWM is the child's own peak after exec
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # MiB (Linux: KiB)
    return int(n), float(run_s), wall, float(hwm), maxrss


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=None,
                   help="alternating runs of onnxviz and the floor, medians kept (default 3, quick 1)")
    p.add_argument("--only", choices=("occlusion", "lime", "rise", "generators", "matlab"),
                   action="append", help="run only these parts (repeatable)")
    p.add_argument("--matlab-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.matlab_child is not None:
        return matlab_child(args.matlab_child, args.threads)
    args.repeat = args.repeat or (1 if args.quick else 3)

    parts = set(args.only or ("occlusion", "lime", "rise", "generators", "matlab"))
    matlab = matlab_row(args) if "matlab" in parts else None  # first: see matlab_row

    import torch

    import onnxviz as ov

    torch.set_num_threads(args.threads)
    m = ov.load(MODEL, threads=args.threads)
    img = photo()
    rows, gens = [], []
    for name, fn in (("occlusion", occlusion_rows), ("lime", lime_rows), ("rise", rise_rows)):
        if name in parts:
            fn(m, img, args, rows)
    if "generators" in parts:
        generator_rows(args, gens)

    print(f"EfficientNet-Lite0, {args.threads} threads{' (quick)' if args.quick else ''}; seconds")
    print(f"{'case':<30} {'onnxviz':>8} {'peer':>7} {'peer s':>8} {'floor':>8} "
          f"{'vs floor':>9} {'vs peer':>8}  target")
    print("(onnxviz and floor: medians of alternating runs; vs floor: median of paired ratios; "
          "peers: one run)")
    for name, ours, peer, peer_s, fl, ratio, note in rows:
        vs_peer = f"{peer_s / ours:>7.2f}x" if peer_s else f"{'':>8}"
        peer_t = f"{peer_s:>8.2f}" if peer_s else f"{'':>8}"
        print(f"{name:<30} {ours:>8.2f} {peer:>7} {peer_t} {fl:>8.2f} {ratio:>8.3f}x "
              f"{vs_peer}  {note}")
    if gens:
        print(f"\n{'generator alone':<30} {'Numba':>8} {'vs':<15} {'other':>8} {'speed-up':>9}")
    for name, ours, other, other_s in gens:
        print(f"{name:<30} {ours:>8.3f} {other:<15} {other_s:>8.3f} {other_s / ours:>8.1f}x")
    if matlab:
        n, run_s, wall, hwm, maxrss = matlab
        print(f"\nMATLAB setting (71x71 gray patch, stride {8 if args.quick else 1}, centred, "
              f"batch 32): {n} occluded images in {run_s:.1f} s "
              f"({n / run_s:.0f} img/s; process {wall:.1f} s), peak RSS {hwm:.0f} MiB "
              f"(VmHWM; ru_maxrss {maxrss:.0f} MiB; target < 1536 MiB)")


if __name__ == "__main__":
    main()
