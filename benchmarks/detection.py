"""Detection explanations against their floors, in one run (issue 22).

- D-RISE: onnxviz's ``drise`` (masks, forwards, decoding, weights) against the bare ONNX Runtime
  floor: the same masked images through the unmodified graph in batches.
- ODAM for every box of an image: onnxviz (one batched gradient run through the box view) against
  the same per-box maps from ``torch.autograd.grad`` on the torch twin (what Captum calls),
  one box at a time as a Captum/pytorch-grad-cam user loops over boxes.

On the scenes detector of ``models/train_scenes.py`` (torch seed 0; 96 px), 2 threads::

    python benchmarks/detection.py              # 2000 masks, best of 3
    python benchmarks/detection.py --quick      # 200 masks, one repeat
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import onnxruntime as ort
    import torch

    import onnxviz as ov
    from models.scenes import make_scenes
    from models.train_scenes import SIZE, ShapesDetector
    from onnxviz.explainers.boxes import feature_levels
    from onnxviz.perturb import mask_params, rise_masks

    torch.set_num_threads(args.threads)
    n_masks, repeats = (200, 1) if args.quick else (2000, 3)
    torch.manual_seed(0)
    net = ShapesDetector().eval()
    path = Path(tempfile.mkdtemp()) / "det.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, SIZE, SIZE), str(path), input_names=["x"],
                      output_names=["out"], dynamic_axes={"x": {0: "n"}, "out": {0: "n"}},
                      opset_version=17, dynamo=False)
    m = ov.load(path, preprocess="unit", threads=args.threads)
    photo = make_scenes(1, seed=5).images[0]
    boxes = m.predict(photo, max_detections=8)
    print(f"{args.threads} threads, scenes detector {SIZE} px, {len(boxes)} boxes, "
          f"levels {[(a, b) for a, b, _ in feature_levels(m)]}")

    # D-RISE vs the floor: the same masked images through the plain graph
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x0 = m.normalize(m.to_pixels(photo))
    grids, shifts, cell = mask_params(n_masks, 16, 0.5, (SIZE, SIZE), 0)
    masks = np.empty((n_masks + 1, SIZE, SIZE), np.float32)
    rise_masks(grids, shifts, cell, 0, masks)
    batch = (x0 * masks[:, None]).astype(np.float32)

    def floor():
        for s in range(0, len(batch), 32):
            sess.run(None, {"x": batch[s:s + 32]})

    def drise():
        ov.explain(m, photo, method="drise", num_masks=n_masks, max_detections=8, batch_size=32)

    drise()  # warm-up: sessions, kernels
    t_floor, t_drise = best(floor, repeats), best(drise, repeats)
    print(f"{'D-RISE, ' + str(n_masks) + ' masks, all boxes':40} onnxviz {t_drise:8.3f} s  "
          f"floor {t_floor:8.3f} s  ratio {t_drise / t_floor:5.2f}x")

    # ODAM for every box: onnxviz vs torch.autograd.grad per box on the twin
    def odam():
        ov.explain(m, photo, method="odam", max_detections=8)

    xt = torch.from_numpy(x0)
    anchors = [int(a) for a in boxes.anchor]
    classes = [int(c) for c in boxes.class_id]

    def torch_odam():
        for a, c in zip(anchors, classes):
            feats = {}
            module = net.head8[0] if a < 144 else net.head16[0]
            hook = module.register_forward_hook(lambda mod, i, o: feats.update(a=o))
            out = net(xt)
            hook.remove()
            (g,) = torch.autograd.grad(out[0, 4 + c, a], feats["a"])
            torch.relu((g * feats["a"]).sum(1))

    odam()
    torch_odam()
    t_ours, t_torch = best(odam, repeats), best(torch_odam, repeats)
    print(f"{'ODAM, every box of the image':40} onnxviz {t_ours:8.3f} s  "
          f"torch {t_torch:8.3f} s  speed-up {t_torch / t_ours:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
