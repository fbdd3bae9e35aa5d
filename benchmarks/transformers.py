"""Input-gradient throughput on vision transformers: onnxviz vs torch autograd vs plain forward.

timm's ViT-Tiny and Swin-Tiny at 224 px with random weights (no weights can be downloaded here),
exported with the TorchScript exporter (opset 17, symbolic batch) and with dynamo, in one run:

- ``onnxviz gradient``: ``Model.grad`` (the gradient graph with the probe's static sizes),
  forward + backward in one ONNX Runtime run, one-hot targets;
- ``torch autograd.grad``: forward + ``torch.autograd.grad(score, input)``, the input gradient only
  (what Captum computes; ``.backward()`` would also compute every weight gradient), same thread
  count;
- ``ORT forward``: the plain forward pass of the same file (the floor).

Targets: issue 9, onnxviz >= 2x torch autograd; issue 25, >= 1.3x torch autograd.grad on
ViT-Tiny and Swin-Tiny (issue 25's table is ``benchmarks/gradients.py --zoo``). Run from the repository
root (timm and torch from the test extra)::

    python benchmarks/transformers.py                 # both models, batch 16, 2 threads
    python benchmarks/transformers.py --model vit --profile   # + ORT kernel time per op type
    python benchmarks/transformers.py --quick         # smoke run: batch 2, 1 repeat

Forward, gradient and torch are timed alternately, round after round, so that all three see the
same machine load; the best time of each is reported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"vit": "vit_tiny_patch16_224", "swin": "swin_tiny_patch4_window7_224"}


def register_torchvision_ops() -> None:
    """On a CPU torch without a working torchvision: register the two operator schemas
    torchvision's import needs (timm and pytorch-grad-cam import it; benchmark code only, as in
    tests/zoo/timm_shim.py)."""
    import torch

    try:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        register_torchvision_ops.lib = lib
    except RuntimeError:
        pass


def _timm():
    """timm on a CPU torch without a working torchvision."""
    register_torchvision_ops()
    import timm

    return timm


def bench(key: str, exporter: str, batch: int, threads: int, repeats: int, profile: bool,
          folder: Path) -> None:
    import torch

    import onnxviz as ov
    from benchmarks.gradients import _interleaved, torch_input_grad
    from onnxviz import runtime

    timm = _timm()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = timm.create_model(MODELS[key], pretrained=False).eval()
    x = torch.randn(batch, 3, 224, 224)
    path = folder / f"{key}-{exporter}.onnx"
    if not path.exists():
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                torch.onnx.export(net, (x[:2],), path, dynamo=True, input_names=["x"],
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
            else:
                torch.onnx.export(net, (x[:2],), path, dynamo=False, opset_version=17,
                                  input_names=["x"], output_names=["logits"],
                                  dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    m = ov.load(path, preprocess="imagenet", threads=threads, batch_size=batch)
    xn = x.numpy()
    targets = np.random.default_rng(0).integers(0, 1000, batch)
    t0 = time.perf_counter()
    ours = m.grad(xn, list(targets))  # builds and caches the gradient graph
    build = time.perf_counter() - t0
    fwd = runtime.session(m.proto, providers=["CPUExecutionProvider"], threads=threads)
    torch_grad = torch_input_grad(net, x, torch.from_numpy(targets))

    times = {k: min(v) for k, v in _interleaved({
        "onnxviz gradient (ORT)": lambda: m.grad(xn, list(targets)),
        "torch autograd.grad": torch_grad,
        "ORT forward only (floor)": lambda: fwd.run(None, {m.input.name: xn}),
    }, repeats).items()}
    ref = torch_grad().numpy()
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    print(f"\n{MODELS[key]} ({exporter}), 224 px, batch {batch}, {threads} threads, best of "
          f"{repeats} (gradient graph + probe + session built in {build:.1f} s)")
    print(f"{'method':<28}{'s / batch':>12}{'images / s':>14}")
    for name, t in times.items():
        print(f"{name:<28}{t:>12.3f}{batch / t:>14.1f}")
    g, tr, f = (times["onnxviz gradient (ORT)"], times["torch autograd.grad"],
                times["ORT forward only (floor)"])
    print(f"onnxviz vs torch autograd.grad: {tr / g:.2f}x throughput (target >= 1.3x); "
          f"forward+backward / forward: {g / f:.2f}x; max |diff| / max |grad| = {err:.1e}")
    if profile:
        from benchmarks.gradients import _profile
        from onnxviz.model.grad import gradient_session

        gm, _ = gradient_session(m, m.score_output, (m.input.name,))
        seed = np.zeros((batch, 1000), np.float32)
        seed[np.arange(batch), targets] = 1
        pf = _profile(m.proto, {m.input.name: xn}, threads)
        pg = _profile(gm.model, {m.input.name: xn, gm.seed: seed}, threads)
        print(f"{'op':<20}{'forward':>10}{'fwd+bwd':>10}   (ms / run)")
        for op in sorted(set(pf) | set(pg), key=lambda o: -pg.get(o, 0) - pf.get(o, 0)):
            if max(pf.get(op, 0), pg.get(op, 0)) >= 0.5:
                print(f"{op:<20}{pf.get(op, 0):>10.1f}{pg.get(op, 0):>10.1f}")
        print(f"{'total':<20}{sum(pf.values()):>10.1f}{sum(pg.values()):>10.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=[*MODELS, "all"], default="all")
    ap.add_argument("--exporter", choices=["torchscript", "dynamo", "all"], default="torchscript")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 2, 1 repeat")
    ap.add_argument("--cache", default=None, help="folder for the exported files (default: temp)")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.repeats = 2, 1
    folder = Path(args.cache or tempfile.mkdtemp(prefix="onnxviz-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    keys = list(MODELS) if args.model == "all" else [args.model]
    exporters = ["torchscript", "dynamo"] if args.exporter == "all" else [args.exporter]
    for key in keys:
        for ex in exporters:
            bench(key, ex, args.batch, args.threads, args.repeats, args.profile, folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
