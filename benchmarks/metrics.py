"""Deletion and insertion AUC: onnxviz vs Quantus vs the bare ONNX Runtime floor.

For N images of one model (Grad-CAM maps), in one run:

- onnxviz ``deletion`` and ``insertion`` (Numba ordered batches streamed through the session);
- Quantus ``PixelFlipping`` (its deletion curve; Quantus has no insertion) on a torch module that
  runs the same ONNX Runtime session, with the same number of steps and batch;
- the floor: bare ``session.run`` on the same number of forward passes in batches of the same
  size, inputs prepared beforehand and outside the timing.

Every side runs ``steps + 1`` forward passes per image (Quantus ``steps``: it does not score the
untouched image). Run from the repository root::

    python benchmarks/metrics.py                      # EfficientNet-Lite0, 8 photos, 48 steps
    python benchmarks/metrics.py --model shapes_cnn --images 32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clock(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def photos(n: int, model):
    import skimage.data

    names = ["chelsea", "coffee", "astronaut", "rocket"]
    base = [model.to_pixels(getattr(skimage.data, k)())[0] for k in names]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):  # flips and shifts of four photos
        im = base[i % 4]
        im = im[:, ::-1] if (i // 4) % 2 else im
        out.append(np.ascontiguousarray(np.roll(im, 7 * (i // 8), axis=1)))
    return out


def quantus_deletion(model, x, maps, targets, steps, batch):
    import torch

    from tests.metrics.metric_models import import_quantus

    quantus = import_quantus()
    sess = model.session()
    name = model.input.name

    class Ort(torch.nn.Module):  # the same session, called by Quantus through torch
        def forward(self, t):
            return torch.from_numpy(sess.run([model.score_output], {name: t.numpy()})[0])

    hw = maps.shape[-1] * maps.shape[-2]
    # Quantus wants a step dividing H * W and walks 3 * H * W channel features: the divisor
    # nearest to 3 * H * W / steps gives (about) the same number of forward passes
    feat = min((d for d in range(1, hw + 1) if hw % d == 0),
               key=lambda d: abs(d - 3 * hw / steps))
    print(f"Quantus: features_in_step {feat}, {-(-3 * hw // feat)} steps per image")
    metric = quantus.PixelFlipping(features_in_step=feat, normalise=False, abs=False,
                                   perturb_baseline="black", disable_warnings=True)
    with quantus.calling():
        return metric(model=Ort().eval(), x_batch=x, y_batch=targets, a_batch=maps[:, None],
                      softmax=True, channel_first=True, device="cpu", batch_size=batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0", help="a bundled model's name")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--steps", type=int, default=48, help="points per curve after the start")
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import onnxviz as ov
    from onnxviz import metrics

    model = ov.load(ov.bundled_model(args.model), threads=args.threads)
    if model.input.layout != "NCHW":
        sys.exit("the Quantus comparison here needs an NCHW model")
    imgs = photos(args.images, model)
    es = ov.explain(model, imgs, method="gradcam")
    passes = args.images * (args.steps + 1)
    print(f"{args.model}, {args.images} images, {args.steps} steps ({passes} forward passes "
          f"per curve), batch {args.batch}, {args.threads} ORT threads")

    opts = dict(steps=args.steps, batch_size=args.batch)
    metrics.get("deletion")(model, es[0], steps=2)  # compile the kernels outside the timing
    t_del, d = clock(lambda: [metrics.get("deletion")(model, e, **opts) for e in es])
    t_ins, _ = clock(lambda: [metrics.get("insertion")(model, e, **opts) for e in es])

    x = model.preprocess(imgs)
    sess, name = model.session(), model.input.name
    batches = [np.repeat(x[i:i + 1], args.batch, axis=0) for i in range(len(imgs))]
    per_image = -(-(args.steps + 1) // args.batch)

    def floor():
        for b in batches:
            for k in range(per_image):
                n = min(args.batch, args.steps + 1 - k * args.batch)
                sess.run([model.score_output], {name: b[:n]})

    t_floor, _ = clock(floor)
    maps = np.stack([e.heatmap for e in es]).astype(np.float32)
    targets = np.array([e.target for e in es])
    try:
        t_q, q = clock(lambda: quantus_deletion(model, x, maps, targets, args.steps, args.batch))
        # Quantus's "black" is the input tensor's minimum, not black pixels: the curves differ
        same = f"mean AUC {np.mean([np.trapezoid(c) / len(c) for c in q]):.4f} (its own fill)"
    except Exception as err:  # Quantus missing or failing: say so, keep the other rows
        t_q, same = float("nan"), f"Quantus failed: {type(err).__name__}: {err}"
    rows = [("onnxviz deletion", t_del), ("onnxviz insertion", t_ins),
            ("Quantus PixelFlipping (deletion)", t_q), ("ORT floor (same passes)", t_floor)]
    for label, t in rows:
        print(f"{label:<34} {t:8.2f} s  {t / args.images * 1000:8.1f} ms/image  "
              f"{t / t_floor:5.2f}x floor")
    print(f"deletion AUC mean {np.mean([s.value for s in d]):.4f}; Quantus curves: {same}")


if __name__ == "__main__":
    main()
