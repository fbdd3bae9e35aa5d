"""Gradient explainers on EfficientNet-Lite0: onnxviz vs Captum on the torch original, and the floor.

Rows (seconds per image, lower is better; images/s where batched):

- Grad-CAM, one image per call: onnxviz vs Captum ``LayerGradCam`` (same layer: the head's ReLU6);
- Grad-CAM, batch of 16: images/s;
- Saliency, batch of 16: onnxviz vs Captum ``Saliency``;
- Integrated Gradients, 50 steps, one image: onnxviz vs Captum ``IntegratedGradients``;
- the floor: the bare ONNX Runtime forward pass of the same images (batch 1 and 16).

Both sides run on the same number of threads (2 by default). Run from the repository root::

    python benchmarks/gradient_explainers.py            # full
    python benchmarks/gradient_explainers.py --quick    # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timeit(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def photos(n: int) -> np.ndarray:
    import cv2
    import skimage.data

    base = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    imgs = [cv2.resize(b, (224, 224), interpolation=cv2.INTER_LINEAR) for b in base]
    return np.stack([imgs[i % len(imgs)] for i in range(n)])


def torch_net():
    """The torch original with the head's ReLU6 as its own module (for a layer hook)."""
    from models.build_efficientnet import torch_model_with_head_act

    return torch_model_with_head_act()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=str(ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"))
    args = p.parse_args(argv)

    import torch
    from captum.attr import IntegratedGradients, LayerGradCam, Saliency

    import onnxviz as ov
    from models.build_efficientnet import normalize

    torch.set_num_threads(args.threads)
    repeat = 1 if args.quick else 5
    batch = 4 if args.quick else 16
    ig_steps = 10 if args.quick else 50
    m = ov.load(args.model, threads=args.threads)
    net = torch_net()
    pix = photos(batch)
    x_np = normalize(pix)
    x = torch.from_numpy(x_np)
    one, x1 = pix[:1], x[:1]
    target = 281
    sess = m.session()
    rows = []

    def row(name, ours, peer, per, target_speedup=None):
        speed = peer / ours if peer else None
        rows.append((name, ours / per, None if peer is None else peer / per, speed, target_speedup))

    floor1 = timeit(lambda: sess.run(None, {m.input.name: x_np[:1]}), repeat * 3)
    floor16 = timeit(lambda: sess.run(None, {m.input.name: x_np}), repeat)

    lgc = LayerGradCam(net, net._head_act)
    ours = timeit(lambda: ov.explain(m, list(one), method="gradcam", target=target), repeat * 3)
    peer = timeit(lambda: lgc.attribute(x1, target=target, relu_attributions=True), repeat * 3)
    row("Grad-CAM, batch 1", ours, peer, 1, 3)
    ours = timeit(lambda: ov.explain(m, list(pix), method="gradcam", target=target, batch_size=batch), repeat)
    peer = timeit(lambda: lgc.attribute(x, target=target, relu_attributions=True), repeat)
    row(f"Grad-CAM, batch {batch}", ours, peer, batch)

    sal = Saliency(net)
    ours = timeit(lambda: ov.explain(m, list(pix), method="saliency", target=target, batch_size=batch), repeat)
    peer = timeit(lambda: sal.attribute(x, target=target, abs=True), repeat)
    row(f"Saliency, batch {batch}", ours, peer, batch, 2)

    ig = IntegratedGradients(net)
    ours = timeit(lambda: ov.explain(m, list(one), method="integrated_gradients", target=target,
                                     steps=ig_steps, batch_size=min(ig_steps, 25)), repeat)
    peer = timeit(lambda: ig.attribute(x1, target=target, n_steps=ig_steps,
                                       internal_batch_size=min(ig_steps, 25)), repeat)
    row(f"Integrated Gradients, {ig_steps} steps", ours, peer, 1, 2)

    print(f"EfficientNet-Lite0, {args.threads} threads, onnxruntime vs torch {torch.__version__} + Captum"
          f"{' (quick)' if args.quick else ''}")
    print(f"{'method':<32} {'onnxviz s/img':>14} {'Captum s/img':>13} {'speed-up':>9} {'target':>7} "
          f"{'img/s':>7}")
    for name, ours, peer, speed, tgt in rows:
        print(f"{name:<32} {ours:>14.4f} {peer:>13.4f} {speed:>8.2f}x "
              f"{'' if tgt is None else f'>={tgt}x':>7} {1 / ours:>7.1f}")
    print(f"{'floor: ORT forward, batch 1':<32} {floor1:>14.4f} {'':>13} {'':>9} {'':>7} {1 / floor1:>7.1f}")
    print(f"{f'floor: ORT forward, batch {batch}':<32} {floor16 / batch:>14.4f} {'':>13} {'':>9} {'':>7} "
          f"{batch / floor16:>7.1f}")


if __name__ == "__main__":
    main()
