"""Input-gradient throughput: onnxviz's rewritten ONNX graph vs PyTorch autograd vs plain forward.

On EfficientNet-Lite0 (``onnxviz/data/models/efficientnet_lite0.onnx``, the torch original from
``models.build_efficientnet.torch_model``), all with the same thread count, in one run:

- ``onnxviz gradient``: one ONNX Runtime run of ``gradient_model(of="logits", wrt=["input"], cpu=True)``
  (forward + backward), seeded with one-hot targets;
- ``torch autograd.grad``: forward + ``torch.autograd.grad(score, input)``, the input gradient
  only (what Captum computes; ``.backward()`` would also compute every weight gradient);
- ``ORT forward``: the plain forward pass (the floor).

``--zoo`` measures the architectures of issue 25 instead, in one interleaved run: timm ResNet-50 and
MobileNetV3-Large at 160 px, the bundled EfficientNet-Lite0 at 224 px, timm ViT-Tiny and Swin-Tiny
at 224 px (timm with random weights, exported with the TorchScript exporter, opset 17). Targets of
issue 25: forward+backward <= 3x the forward on the three CNNs; onnxviz >= 2x torch autograd.grad
on the CNNs and >= 1.3x on the transformers. Run from the repository root::

    python benchmarks/gradients.py            # EfficientNet-Lite0, batch 16, 2 threads, 5 repeats
    python benchmarks/gradients.py --quick    # smoke run: batch 2, 1 repeat
    python benchmarks/gradients.py --no-torch --profile   # + ORT per-op times, fwd vs fwd+bwd
    python benchmarks/gradients.py --zoo      # issue 25's table: batch 8, 2 threads, best of 5
    python benchmarks/gradients.py --zoo --only mobilenetv3 --no-torch --profile

The forward and the gradient runs are timed alternately, round after round, so that both see the
same machine load (the machine is shared); the ratio is reported from the best times and as the
median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call (seconds)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _interleaved(fns: dict, repeats: int, cpu: dict | None = None) -> dict:
    """Wall times (seconds) of each of ``fns``, called in turn in ``repeats`` rounds after one
    warm-up round, so that every variant sees the same machine load. When a dict ``cpu`` is given,
    it receives each call's process CPU time too (all threads; less sensitive than wall time to
    other jobs on a shared machine, as long as nothing spin-waits)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    if cpu is not None:
        cpu.update({name: [] for name in fns})
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            if cpu is not None:
                cpu[name].append(time.process_time() - c0)
    return times


def _profile(model, feeds: dict, threads: int, runs: int = 3) -> dict:
    """ONNX Runtime kernel time (ms per run) by op type, warm-up run excluded."""
    import collections
    import json
    import tempfile

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for _ in range(runs + 1):
        sess.run(None, feeds)
    path = Path(sess.end_profiling())
    events = json.loads(path.read_text())
    path.unlink()
    first = min((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    start = first["ts"] + first["dur"]
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] > start:
            per_op[e["args"]["op_name"]] += e["dur"] / 1000 / runs
    return per_op


def _photos(n: int) -> np.ndarray:
    """``n`` model inputs from skimage's photos (random 224x224 crops of the four, normalized)."""
    import cv2
    import skimage.data

    from models.build_efficientnet import normalize

    rng = np.random.default_rng(0)
    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        s = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        out.append(cv2.resize(img[y0:y0 + s, x0:x0 + s], (224, 224), interpolation=cv2.INTER_LINEAR))
    return normalize(np.stack(out))


def torch_input_grad(net, x, targets):
    """A function returning d sum(logits[i, targets[i]]) / d x by ``torch.autograd.grad``: the
    input gradient only, as Captum computes it (no weight gradients)."""
    import torch

    rows = torch.arange(len(targets))

    def run():
        xx = x.clone().requires_grad_(True)
        return torch.autograd.grad(net(xx)[rows, targets].sum(), xx)[0]

    return run


ZOO = {  # key: (timm name or None for the bundled EfficientNet-Lite0, image size)
    "resnet50": ("resnet50", 160),
    "mobilenetv3": ("mobilenetv3_large_100", 160),
    "efficientnet_lite0": (None, 224),
    "vit_tiny": ("vit_tiny_patch16_224", 224),
    "swin_tiny": ("swin_tiny_patch4_window7_224", 224),
}


def _zoo_model(key: str, folder: Path):
    """(torch module, ONNX path, image size) of a zoo entry; the file is exported once per folder."""
    import warnings

    import torch

    name, size = ZOO[key]
    torch.manual_seed(0)
    if name is None:
        from models.build_efficientnet import torch_model

        return torch_model(), ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx", size
    from benchmarks.transformers import _timm

    net = _timm().create_model(name, pretrained=False).eval()
    path = folder / f"{key}-{size}.onnx"
    if not path.exists():
        x = torch.randn(2, 3, size, size)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return net, path, size


def zoo(args) -> int:
    """Issue 25's table: per architecture, forward, fwd+bwd and torch autograd.grad interleaved."""
    import tempfile

    import onnxviz as ov
    from onnxviz import runtime
    from onnxviz.model.grad import gradient_session

    folder = Path(args.cache or tempfile.mkdtemp(prefix="onnxviz-zoo-"))
    folder.mkdir(parents=True, exist_ok=True)
    keys = list(ZOO) if args.only == "all" else args.only.split(",")
    lines = []
    for key in keys:
        net, path, size = _zoo_model(key, folder)
        m = ov.load(path, preprocess="imagenet", threads=args.threads, batch_size=args.batch)
        x = np.random.default_rng(0).standard_normal((args.batch, 3, size, size)).astype(np.float32)
        targets = np.random.default_rng(1).integers(0, 1000, args.batch)
        seed = np.zeros((args.batch, 1000), np.float32)
        seed[np.arange(args.batch), targets] = 1
        t0 = time.perf_counter()
        gm, bwd = gradient_session(m, m.score_output, (m.input.name,))
        build = time.perf_counter() - t0
        inp, g_out = m.input.name, gm.grads[m.input.name]
        fwd = runtime.session(m.proto, providers=["CPUExecutionProvider"], threads=args.threads)
        fns = {"fwd": lambda: fwd.run(None, {inp: x}),
               "grad": lambda: bwd.run([g_out], {inp: x, gm.seed: seed})}
        err = None
        if not args.no_torch:
            import torch

            torch.set_num_threads(args.threads)
            fns["torch"] = torch_input_grad(net, torch.from_numpy(x), torch.from_numpy(targets))
            tx = torch.from_numpy(x)

            def torch_forward():
                with torch.no_grad():
                    return net(tx)

            fns["torch fwd"] = torch_forward
        cpu = {}
        times = {k: min(v) for k, v in _interleaved(fns, args.repeats, cpu).items()}
        cpu_ratio = float(np.median(np.asarray(cpu["grad"]) / np.asarray(cpu["fwd"])))
        if "torch" in fns:
            ref = fns["torch"]().numpy()
            ours = fns["grad"]()[0]
            err = np.abs(ours - ref).max() / np.abs(ref).max()
        row = (f"{key:<20}{size:>5}{times['fwd']:>9.3f}{times['grad']:>9.3f}"
               f"{times['grad'] / times['fwd']:>10.2f}{cpu_ratio:>10.2f}")
        if "torch" in times:
            row += (f"{times['torch']:>9.3f}{times['torch'] / times['grad']:>10.2f}"
                    f"{times['torch fwd']:>10.3f}{times['torch'] / times['torch fwd']:>8.2f}{err:>10.1e}")
        lines.append(row)
        print(f"{key}: graph built in {build:.1f} s, {len(gm.model.graph.node)} nodes", file=sys.stderr)
        if args.profile:
            _print_profile(m.proto, gm.model, {inp: x}, {inp: x, gm.seed: seed}, args.threads)
        del m, net, fwd, bwd, fns
        runtime.clear_cache()
    print(f"\nbatch {args.batch}, {args.threads} threads, best of {args.repeats} interleaved rounds "
          f"(pid {os.getpid()}); seconds per batch")
    print("ratio: fwd+bwd / fwd from the best wall times; cpu ratio: median per-round ratio of "
          "process CPU times (ORT does not spin here); torch: forward + autograd.grad w.r.t. the "
          "input, torch fwd: its forward alone (no_grad), with their ratio; max err: "
          "max |ours - torch| / max |torch|, float32 both")
    print(f"{'model':<20}{'px':>5}{'ORT fwd':>9}{'fwd+bwd':>9}{'ratio':>10}{'cpu ratio':>10}"
          + ("" if args.no_torch else f"{'torch':>9}{'vs torch':>10}{'torch fwd':>10}{'ratio':>8}"
                                         f"{'max err':>10}"))
    print("\n".join(lines))
    return 0


def _print_profile(fwd_model, grad_model, fwd_feeds, grad_feeds, threads):
    pf = _profile(fwd_model, fwd_feeds, threads)
    pg = _profile(grad_model, grad_feeds, threads)
    print(f"\nONNX Runtime kernel time per op type (ms / run, {threads} threads)")
    print(f"{'op':<20}{'forward':>10}{'fwd+bwd':>10}")
    for op in sorted(set(pf) | set(pg), key=lambda o: -pg.get(o, 0) - pf.get(o, 0)):
        if max(pf.get(op, 0), pg.get(op, 0)) >= 0.5:
            print(f"{op:<20}{pf.get(op, 0):>10.1f}{pg.get(op, 0):>10.1f}")
    print(f"{'total':<20}{sum(pf.values()):>10.1f}{sum(pg.values()):>10.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 2, 1 repeat")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch autograd row")
    ap.add_argument("--profile", action="store_true",
                    help="also print ONNX Runtime's kernel time per op type (forward vs gradient)")
    ap.add_argument("--zoo", action="store_true",
                    help="issue 25's architectures instead (batch 8 unless --batch is given)")
    ap.add_argument("--only", default="all", help=f"--zoo: comma list of {', '.join(ZOO)}")
    ap.add_argument("--cache", default=None, help="--zoo: folder for the exported files")
    args = ap.parse_args(argv)
    if args.zoo and "--batch" not in (argv if argv is not None else sys.argv):
        args.batch = 8
    if args.quick:
        args.batch, args.repeats = 2, 1
    if args.zoo:
        return zoo(args)

    import onnx

    from onnxviz import runtime
    from onnxviz.autodiff import gradient_model

    proto = onnx.load(args.model)
    inp, out = proto.graph.input[0].name, proto.graph.output[0].name
    rng = np.random.default_rng(0)
    x = _photos(args.batch)
    targets = rng.integers(0, 1000, args.batch)
    seed = np.zeros((args.batch, 1000), np.float32)
    seed[np.arange(args.batch), targets] = 1

    t0 = time.perf_counter()
    gm = gradient_model(proto, of=out, wrt=[inp], cpu=True)  # CPU provider only, as Model does
    build_s = time.perf_counter() - t0
    fwd = runtime.session(proto, providers=["CPUExecutionProvider"], threads=args.threads)
    bwd = runtime.session(gm.model, providers=["CPUExecutionProvider"], threads=args.threads)

    rows = []
    times = _interleaved({"fwd": lambda: fwd.run([out], {inp: x}),
                          "grad": lambda: bwd.run([gm.grads[inp]], {inp: x, gm.seed: seed})},
                         args.repeats)
    t_fwd, t_grad = min(times["fwd"]), min(times["grad"])
    med_ratio = float(np.median(np.asarray(times["grad"]) / np.asarray(times["fwd"])))
    rows.append(("onnxviz gradient (ORT)", t_grad))

    t_torch = None
    if not args.no_torch:
        import torch

        from models.build_efficientnet import torch_model

        torch.set_num_threads(args.threads)
        net = torch_model()
        tx = torch.from_numpy(x)
        tt = torch.from_numpy(targets)

        torch_grad = torch_input_grad(net, tx, tt)
        t_torch = _time(torch_grad, args.repeats)
        rows.append(("torch autograd.grad", t_torch))
        ours = bwd.run([gm.grads[inp]], {inp: x, gm.seed: seed})[0]
        ref = torch_grad().numpy()
        err = np.abs(ours - ref).max() / np.abs(ref).max()
    rows.append(("ORT forward only (floor)", t_fwd))

    print(f"EfficientNet-Lite0, batch {args.batch}, {args.threads} threads, best of {args.repeats} "
          f"(gradient graph built in {build_s:.2f} s; {len(gm.model.graph.node)} nodes, "
          f"pid {os.getpid()})")
    print(f"{'method':<28}{'s / batch':>12}{'images / s':>14}")
    for name, t in rows:
        print(f"{name:<28}{t:>12.3f}{args.batch / t:>14.1f}")
    if t_torch is not None:
        print(f"onnxviz vs torch autograd.grad: {t_torch / t_grad:.2f}x throughput (target >= 2x); "
              f"max |diff| / max |grad| = {err:.1e} (float32: ReLU6 kinks flipped by rounding)")
    print(f"forward+backward / forward: {t_grad / t_fwd:.2f}x from the best times, "
          f"{med_ratio:.2f}x median of {args.repeats} alternating rounds (target <= 4x)")
    if args.profile:
        _print_profile(proto, gm.model, {inp: x}, {inp: x, gm.seed: seed}, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
