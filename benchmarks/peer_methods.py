"""Issue 15's methods: onnxviz vs the peer that has the method, and the floor, in one run.

Rows (seconds per image; the peer on the torch original of the same model, same threads):

- on EfficientNet-Lite0 (trained, ReLU6): Eigen-CAM, Ablation-CAM (not with --quick), FullGrad
  and Grad-CAM with
  ``aug_smooth`` against pytorch-grad-cam 1.5.7; Gradient SHAP and KernelSHAP (the same 50
  superpixels as a feature mask) against Captum;
- on a VGG-like ReLU CNN at 224 x 224 (random weights: Captum's DeepLift and LRP have no rule for
  ReLU6): guided backpropagation, DeepLIFT and LRP-epsilon against Captum;
- the floor: the bare ONNX Runtime forward pass of each model (batch 1 and 16).

Run from the repository root::

    python benchmarks/peer_methods.py            # full
    python benchmarks/peer_methods.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gradient_explainers import photos, timeit, torch_net  # noqa: E402
from benchmarks.transformers import register_torchvision_ops  # noqa: E402


def once(fn) -> float:
    """Wall time of one call of ``fn`` (no warm-up)."""
    import time

    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def vgg_like(path: Path):
    """A VGG-like ReLU CNN (8 Conv, 5 MaxPool, 3 Linear; 224 x 224), random weights, exported."""
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    layers, c = [], 3
    for width, convs in ((32, 1), (64, 1), (128, 2), (128, 2), (128, 2)):
        for _ in range(convs):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
            c = width
        layers.append(nn.MaxPool2d(2))
    class VGG(nn.Module):  # no Flatten module: Captum's LRP has no rule for one
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Linear(128 * 7 * 7, 256), nn.ReLU(),
                                            nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1000))

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    net = VGG().eval()
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), str(path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17, dynamo=False)
    return net


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")

    import torch

    register_torchvision_ops()  # pytorch-grad-cam imports torchvision
    from captum.attr import LRP, DeepLift, GradientShap, GuidedBackprop, KernelShap
    from pytorch_grad_cam import AblationCAM, EigenCAM, FullGrad, GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    import onnxviz as ov
    from models.build_efficientnet import normalize

    torch.set_num_threads(args.threads)
    repeat = 1 if args.quick else 3
    batch = 4 if args.quick else 16
    target = 281
    rows = []

    def row(name, ours, peer, per=1):
        rows.append((name, ours / per, None if peer is None else peer / per))
        print(f"measured: {name}", file=sys.stderr, flush=True)

    # ---- EfficientNet-Lite0 -------------------------------------------------------------------
    m = ov.load(ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx", threads=args.threads)
    net = torch_net()
    pix = photos(batch)
    x_np = normalize(pix)
    x1 = torch.from_numpy(x_np[:1])
    one = list(pix[:1])
    sess = m.session()
    floors = [("EfficientNet-Lite0", timeit(lambda: sess.run(None, {m.input.name: x_np[:1]}), repeat * 3),
               timeit(lambda: sess.run(None, {m.input.name: x_np}), repeat) / batch)]
    layer = "_swish_1"  # the same layer on both sides: the head's ReLU6 (onnxviz's default)
    cam_layer = [net._head_act]
    tgt = [ClassifierOutputTarget(target)]
    for name, ours_kw, peer in (
            ("Eigen-CAM", {"method": "eigencam"}, lambda: EigenCAM(net, cam_layer)),
            ("Grad-CAM, aug_smooth", {"method": "gradcam", "aug_smooth": True},
             lambda: GradCAM(net, cam_layer))):
        cam = peer()
        smooth = bool(ours_kw.get("aug_smooth"))
        ours = timeit(lambda kw=ours_kw: ov.explain(m, one, target=target, layer=layer, **kw), repeat)
        theirs = timeit(lambda cam=cam: cam(x1, targets=tgt, aug_smooth=smooth), repeat)
        cam.activations_and_grads.release()  # its hooks would keep every later forward's tensors
        row(name, ours, theirs)
    if not args.quick:  # the peer runs 1,280 ablated copies of the head: minutes; one call each
        ours = once(lambda: ov.explain(m, one, method="ablationcam", target=target, layer=layer))
        with AblationCAM(net, cam_layer) as cam:
            row("Ablation-CAM (one call)", ours, once(lambda: cam(x1, targets=tgt)))
    with FullGrad(net, []) as fg:
        ours = timeit(lambda: ov.explain(m, one, method="fullgrad", target=target), repeat)
        row("FullGrad", ours, timeit(lambda: fg(x1, targets=tgt), repeat))

    gs = GradientShap(net)
    base = torch.zeros(1, 3, 224, 224)
    ours = timeit(lambda: ov.explain(m, one, method="gradient_shap", target=target, samples=5,
                                     baseline="zero", batch_size=5), repeat)
    theirs = timeit(lambda: gs.attribute(x1, base, target=target, n_samples=5), repeat)
    row("Gradient SHAP, 5 samples", ours, theirs)

    n_ks = 100 if args.quick else 500
    from onnxviz.perturb.segment import grid_segments

    seg = grid_segments((224, 224), 50)
    ks = KernelShap(net)
    mask = torch.from_numpy(seg)[None, None].expand(1, 3, 224, 224)
    ours = timeit(lambda: ov.explain(m, one, method="kernelshap", target=target, segments=seg,
                                     num_samples=n_ks, fill="black", score="logit"), 1)
    theirs = timeit(lambda: ks.attribute(x1, baselines=0.0, target=target, feature_mask=mask,
                                         n_samples=n_ks, perturbations_per_eval=32), 1)
    row(f"KernelSHAP, {n_ks} coalitions", ours, theirs)

    # ---- a VGG-like ReLU CNN ------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vgg.onnx"
        vgg = vgg_like(path)
        mv = ov.load(path, preprocess="imagenet", threads=args.threads)
        xv = torch.from_numpy(mv.normalize(pix))
        sv = mv.session()
        xv_np = xv.numpy()
        floors.append(("VGG-like CNN", timeit(lambda: sv.run(None, {"x": xv_np[:1]}), repeat * 3),
                       timeit(lambda: sv.run(None, {"x": xv_np}), repeat) / batch))
        for name, method, peer in (("Guided backprop", "guided_backprop", GuidedBackprop(vgg)),
                                   ("DeepLIFT (zero baseline)", "deeplift", DeepLift(vgg)),
                                   ("LRP-epsilon", "lrp", LRP(vgg))):
            kw = {"baseline": "zero"} if method == "deeplift" else {}
            pkw = {"baselines": torch.zeros(1, 3, 224, 224)} if method == "deeplift" else {}
            ours = timeit(lambda method=method, kw=kw: ov.explain(
                mv, list(pix), method=method, target=target, batch_size=batch, **kw), repeat)
            theirs = timeit(lambda peer=peer, pkw=pkw: peer.attribute(
                xv, target=target, **{k: v.expand(len(xv), -1, -1, -1) for k, v in pkw.items()}),
                repeat)
            row(f"{name}, batch {batch}", ours, theirs, batch)

    print(f"{args.threads} threads, onnxruntime vs torch {torch.__version__} + Captum / "
          f"pytorch-grad-cam{' (quick)' if args.quick else ''}")
    print(f"{'method':<34} {'onnxviz s/img':>14} {'peer s/img':>11} {'speed-up':>9}")
    for name, ours, peer in rows:
        if peer is None:
            print(f"{name:<34} {ours:>14.4f} {'-':>11} {'-':>9}")
        else:
            print(f"{name:<34} {ours:>14.4f} {peer:>11.4f} {peer / ours:>8.2f}x")
    for model, f1, f16 in floors:
        print(f"{'floor: ' + model + ', batch 1':<34} {f1:>14.4f}")
        print(f"{'floor: ' + model + f', batch {batch}':<34} {f16:>14.4f}")


if __name__ == "__main__":
    main()
