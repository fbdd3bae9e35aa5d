"""Incremental occlusion (onnxviz.incremental) vs the bare ONNX Runtime floor.

One row per configuration of issue 23 (seconds, lower is better; one 224x224 image):

- VGG16, ResNet-18, ResNet-50 (timm architectures, random weights and BatchNorm statistics,
  exported once with the TorchScript exporter into ``--cache``), patch 16, stride 4 (2,809
  positions);
- EfficientNet-Lite0 (bundled), patch 16, stride 8 (729 positions);
- the seed configuration: ResNet-50, patch 71, stride 1, patches centred on each pixel
  (MATLAB's run, 50,176 positions), with its peak memory measured in a subprocess;
- ``approx``: the approximate modes against the exact map, end to end through ``ov.explain``
  (every position: ResNet-18, patch 16, stride 8, 729 positions, logits): full inference,
  exact incremental, Krypton's projective-field threshold, adaptive drill-down; time, speed-up
  over full inference and the error (max and mean |map - exact| / max |exact|).

The floor is bare ``InferenceSession.run`` of the same occluded images (prepared beforehand, outside
the timing) through the unmodified graph, in batches of the same size. Ours is the incremental
runner: one run of the original (its activations cached), then per batch the crop graphs, the
Numba gathers and pastes and the suffix graph. Timing every position of these runs takes hours on
2 cores, so both sides run the *same sample* of positions (``--positions``, spread evenly over the
grid, corners included); the plan (window sizes, crop graphs) is the one for all positions. Both
times are scaled to the whole run: the sample's time x (all positions / sampled ones), plus, on our
side, the run of the original once (the floor has none: its occluded images need no original). Runs
of ours and of the floor alternate ``--repeat`` times; the ratio is the median of the paired
ratios.
Each row also prints the cost model's view: where the graph was cut, the share of FLOPs skipped
and the predicted speed-up, next to the achieved one. Run from the repository root::

    python benchmarks/incremental.py                  # every row
    python benchmarks/incremental.py --only resnet18 --positions 64
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BUNDLED = ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"

#: name -> (model, patch, stride, edges, target speed-up or None)
ROWS = {
    "vgg16": ("vgg16", 16, 4, "truncate", 3.0),
    "resnet18": ("resnet18", 16, 4, "truncate", 2.0),
    "resnet50": ("resnet50", 16, 4, "truncate", 2.0),
    "effnet": ("efficientnet_lite0", 16, 8, "truncate", 1.5),
    "seed": ("resnet50", 71, 1, "center", None),
}
#: The approximate modes' runs: label -> occlusion options.
APPROX = {
    "full inference": {"incremental": False},
    "incremental, exact": {"incremental": True},
    "projective_threshold=0.5": {"projective_threshold": 0.5},
    "projective_threshold=0.3": {"projective_threshold": 0.3},
    "drilldown=0.25": {"drilldown": 0.25, "incremental": True},
    "drilldown=0.1": {"drilldown": 0.1, "incremental": True},
}


def export(name: str, cache: Path) -> Path:
    """The timm architecture ``name`` at 224 px with random weights, as ONNX (cached)."""
    if name == "efficientnet_lite0":
        return BUNDLED
    out = cache / f"{name}_224.onnx"
    if out.exists():
        return out
    import torch

    try:  # timm imports torchvision, whose CPU wheel may be missing (see tests/zoo/timm_shim.py)
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    except RuntimeError:
        pass
    import timm

    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False).eval()
    for mod in net.modules():  # timm zero-initialises each residual branch's last BatchNorm:
        if isinstance(mod, torch.nn.BatchNorm2d):  # the branches would add nothing
            torch.nn.init.uniform_(mod.weight, 0.5, 1.5)
            torch.nn.init.normal_(mod.bias, 0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
            mod.running_mean.normal_(0, 0.1)
    cache.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.randn(1, 3, 224, 224), str(out), opset_version=17,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    return out


def photo():
    import cv2
    import skimage.data

    return cv2.resize(skimage.data.chelsea(), (224, 224), interpolation=cv2.INTER_LINEAR)


def setup(path: Path, patch: int, stride: int, edges: str, positions: int, threads: int,
          floor: bool = True):
    """Model, plan (all positions), runner (the sample), the sample's occluded inputs (for the
    floor; an empty batch without ``floor``)."""
    import onnxviz as ov
    from onnxviz.incremental import Runner, plan_for
    from onnxviz.perturb import baseline, occlusion_batch, patch_grid

    m = ov.load(path, threads=threads, preprocess="imagenet")
    rects, _ = patch_grid(m.input.size, patch, stride, edges)
    t = time.perf_counter()
    plan = plan_for(m, rects)
    t_plan = time.perf_counter() - t
    index = np.unique(np.linspace(0, len(rects) - 1, positions).round().astype(int))
    x0 = m.preprocess(photo())[0]
    base = m.normalize(baseline(photo(), "gray")[None])[0]
    runner = None
    if plan.reason is None:
        t = time.perf_counter()
        runner = Runner(m, plan.positions(index), rects[index])
        t_plan += time.perf_counter() - t
    images = np.empty((len(index) + 1 if floor else 1, *x0.shape), np.float32)
    if floor:
        occlusion_batch(x0, base, rects[index], 0, images, False)
    return m, plan, runner, x0, base, images[1:], len(rects), t_plan


def ours(runner, x0, base, batch: int) -> tuple[float, float]:
    """Seconds of the original's run (once per image) and of the sampled positions."""
    t = time.perf_counter()
    runner.prepare(x0, base)
    t_prepare = time.perf_counter() - t
    n = len(runner.rects)
    t = time.perf_counter()
    for start in range(0, n, batch):
        runner.scores(start, min(n, start + batch))
    return t_prepare, time.perf_counter() - t


def floor(m, images, batch: int) -> float:
    sess = m.session()
    t = time.perf_counter()
    for start in range(0, len(images), batch):
        sess.run([m.score_output], {m.input.name: images[start:start + batch]})
    return time.perf_counter() - t


def row(key: str, args) -> dict:
    name, patch, stride, edges, target = ROWS[key]
    path = export(name, Path(args.cache))
    m, plan, runner, x0, base, images, total, t_plan = setup(
        path, patch, stride, edges, args.positions, args.threads)
    out = dict(key=key, name=name, patch=patch, stride=stride, total=total, n=len(images),
               plan_s=t_plan, target=target, cut=plan.cut[:2], why=plan.reason,
               skipped=plan.skipped, predicted=plan.speedup, share=plan.max_share)
    if runner is None:
        return out
    batch = runner.fit_batch(args.batch)
    ours(runner, x0, base, batch)  # warm-up: Numba kernels, ORT arenas
    floor(m, images[:batch], batch)
    mine, floors, prep = [], [], []
    scale = total / len(images)  # the whole run: the original once, every position
    for _ in range(args.repeat):
        t_prepare, t_sample = ours(runner, x0, base, batch)
        prep.append(t_prepare)
        mine.append(t_prepare + t_sample * scale)
        floors.append(floor(m, images, batch) * scale)
    out.update(ours=float(np.median(mine)), floor=float(np.median(floors)), batch=batch,
               prepare=float(np.median(prep)), ratio=float(np.median(np.divide(floors, mine))))
    return out


def seed_memory(args) -> str:
    """Peak RSS of the seed configuration (plan of all 50,176 positions, cache, one sampled run)
    in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-child", "--threads", str(args.threads),
           "--positions", str(min(args.positions, 64)), "--cache", args.cache]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return res.stdout.strip().splitlines()[-1]


def memory_child(args) -> None:
    path = export("resnet50", Path(args.cache))
    # without the floor's occluded images: what onnxviz itself holds
    m, plan, runner, x0, base, _, total, _ = setup(path, 71, 1, "center", args.positions,
                                                   args.threads, floor=False)
    ours(runner, x0, base, runner.fit_batch(args.batch))
    hwm = [line for line in Path("/proc/self/status").read_text().splitlines()
           if line.startswith("VmHWM:")]
    rss = int(hwm[0].split()[1]) / 1024 if hwm else float("nan")
    print(f"peak RSS {rss:.0f} MiB (VmHWM of a process that planned all {total} positions, "
          f"cached the activations and ran {len(runner.rects)} of them; target < 1536 MiB)")


def approx_rows(args) -> list:
    import onnxviz as ov

    m = ov.load(export("resnet18", Path(args.cache)), threads=args.threads, preprocess="imagenet")
    img, out, exact = photo(), [], None
    for label, opts in APPROX.items():
        t = time.perf_counter()
        e = ov.explain(m, img, method="occlusion", patch=16, stride=8, score="logit",
                       batch_size=args.batch, **opts)
        seconds = time.perf_counter() - t
        exact = e.raw if exact is None else exact
        err = np.abs(e.raw - exact) / np.abs(exact).max()
        out.append((label, seconds, float(err.max()), float(err.mean()),
                    e.extras["incremental"].get("flops_skipped")))
        print(f"done {label}", file=sys.stderr, flush=True)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=(*ROWS, "approx"), action="append", help="rows to run")
    p.add_argument("--positions", type=int, default=96, help="sampled positions per row")
    p.add_argument("--batch", type=int, default=32, help="positions (images) per run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "onnxviz-bench"),
                   help="where the exported timm models are kept")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        return memory_child(args)
    keys = args.only or [*ROWS, "approx"]
    memory = seed_memory(args) if "seed" in keys else None
    approx = approx_rows(args) if "approx" in keys else None
    rows = []
    for key in (k for k in keys if k in ROWS):
        rows.append(row(key, args))
        print(f"done {key}", file=sys.stderr, flush=True)
    print(f"incremental occlusion vs the ORT floor, {args.threads} threads, one 224 px image, "
          f"the same {args.positions} sampled positions timed on both sides; seconds of the "
          "whole run ('positions' in all: the sample's time scaled, plus our run of the original "
          "once), medians of alternating runs")
    print(f"{'model':<19} {'patch/stride':>12} {'positions':>9} {'ours':>7} {'floor':>7} "
          f"{'speed-up':>8} {'predicted':>9} {'FLOPs skipped':>13} {'target':>6}  cut (first op "
          "run whole)")
    for r in rows:
        if "ours" not in r:
            print(f"{r['name']:<19} {r['patch']:>5}/{r['stride']:<6} {r['total']:>9}  "
                  f"runs in full: {r['why']}")
            continue
        target = f"{r['target']:.1f}x" if r["target"] else "-"
        print(f"{r['name']:<19} {r['patch']:>5}/{r['stride']:<6} {r['total']:>9} "
              f"{r['ours']:>7.2f} {r['floor']:>7.2f} {r['ratio']:>7.2f}x {r['predicted']:>8.2f}x "
              f"{r['skipped']:>12.1%} {target:>6}  {', '.join(r['cut'])} (cut share "
              f"{r['share']:g}; plan + graphs {r['plan_s']:.1f} s; original {r['prepare']:.3f} s; "
              f"batch {r['batch']}; "
              f"{r['n']} positions timed)")
    if memory:
        print(f"seed configuration (ResNet-50, patch 71, stride 1, centred): {memory}")
    if approx:
        full = approx[0][1]
        print("\napproximate modes, end to end (ov.explain), ResNet-18, patch 16, stride 8, all "
              "729 positions, logits; error = |map - exact| / max |exact map|")
        print(f"{'run':<26} {'seconds':>8} {'vs full':>8} {'max error':>10} {'mean error':>11} "
              f"{'FLOPs skipped':>13}")
        for label, seconds, emax, emean, skipped in approx:
            sk = f"{skipped:.1%}" if skipped is not None else "-"
            print(f"{label:<26} {seconds:>8.2f} {full / seconds:>7.2f}x {emax:>10.2e} "
                  f"{emean:>11.2e} {sk:>13}")


if __name__ == "__main__":
    main()
