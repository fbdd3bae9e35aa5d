"""Detection explanations against their floors, in one run (issue 22).

- D-RISE: onnxviz's ``drise`` (masks, forwards, decoding, weights) against the bare ONNX Runtime
  floor: the same masked images through the unmodified graph in batches.
- ODAM for every box of an image: onnxviz (one batched gradient run through the box view) against
  the same per-box maps from ``torch.autograd.grad`` on the torch twin (what Captum calls),
  one box at a time as a Captum/pytorch-grad-cam user loops over boxes.

On the scenes detector of ``models/train_scenes.py`` (torch seed 0; 96 px), 2 threads::

    python benchmarks/detection.py              # 2000 masks, best of 3
    python benchmarks/detection.py --quick      # 200 masks, one repeat

and, when ultralytics is installed (the test install), ODAM on an ultralytics YOLOv8n export
(random weights re-drawn as in ``tests/detection/test_architectures.py``, 320 px) against the
same per-box maps on the ultralytics torch model, and D-RISE on it (300 masks) against its floor
(``--no-yolo`` skips them).
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
    ap.add_argument("--no-yolo", action="store_true", help="skip the YOLOv8n case")
    args = ap.parse_args(argv)
    import torch

    import onnxviz as ov
    from models.scenes import make_scenes
    from models.train_scenes import SIZE, ShapesDetector
    from onnxviz.explainers.boxes import feature_levels

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

    x0 = m.normalize(m.to_pixels(photo))
    drise_vs_floor(m, path, photo, n_masks, repeats, args.threads, "", max_detections=8)

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
    if not args.no_yolo:
        yolov8n_odam(args.threads, 1 if args.quick else 3, masks=100 if args.quick else 300)
    return 0


def drise_vs_floor(m, path, photo, n_masks: int, repeats: int, threads: int, name: str,
                   **nms) -> None:
    """D-RISE of every box of ``photo`` against the bare ONNX Runtime floor: the same
    ``n_masks + 1`` masked images (mask 0 is the photo) through the unmodified graph in
    batches of 32 (one at a time for a file of batch 1), as D-RISE runs them."""
    import onnxruntime as ort

    import onnxviz as ov
    from onnxviz.perturb import mask_params, rise_masks

    from onnxviz import runtime

    # the session options onnxviz runs with (threads, no spinning), as benchmarks/runtime.py's
    # bare session: a spinning floor loses to any other busy process
    sess = ort.InferenceSession(str(path), runtime._options(threads),
                                providers=["CPUExecutionProvider"])
    x0 = m.normalize(m.to_pixels(photo))
    size = m.input.size
    grids, shifts, cell = mask_params(n_masks, 16, 0.5, size, 0)
    masks = np.empty((n_masks + 1, *size), np.float32)
    rise_masks(grids, shifts, cell, 0, masks)
    batch = (x0 * masks[:, None]).astype(np.float32)
    feed, step = m.input.name, 1 if m.fixed_batch else 32  # an ultralytics export: batch 1

    def floor():
        for s in range(0, len(batch), step):
            sess.run(None, {feed: batch[s:s + step]})

    def drise():
        ov.explain(m, photo, method="drise", num_masks=n_masks, batch_size=32, **nms)

    drise()  # warm-up: sessions, kernels
    t_floor, t_drise = best(floor, repeats), best(drise, repeats)
    label = f"D-RISE{name}, {n_masks} masks, all boxes"
    print(f"{label:40} onnxviz {t_drise:8.3f} s  floor {t_floor:8.3f} s  "
          f"ratio {t_drise / t_floor:5.2f}x")


def yolov8n_odam(threads: int, repeats: int, size: int = 320, boxes: int = 8,
                 masks: int = 300) -> None:
    """ODAM for every box of one image on an ultralytics YOLOv8n export: onnxviz against
    ``torch.autograd.grad`` per box on the ultralytics model, at the level onnxviz picks."""
    import os
    import warnings

    import torch

    try:
        import ultralytics  # noqa: F401
    except ImportError:
        print("YOLOv8n: ultralytics is not installed (pip install --no-deps ultralytics)")
        return
    import onnxviz as ov
    from onnxviz.explainers.boxes import feature_levels, level_layer
    from skimage import data

    folder = Path(tempfile.mkdtemp())
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    lib = torch.library.Library("torchvision", "DEF")  # torchvision does not import here
    for op in ("nms", "qnms"):
        try:
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        except RuntimeError:
            pass
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolov8n.yaml")
    head = yolo.model.model[-1]
    with torch.no_grad():  # activations that do not vanish, class scores that differ
        for mod in yolo.model.modules():
            if isinstance(mod, torch.nn.Conv2d) and mod.weight.requires_grad:
                torch.nn.init.kaiming_normal_(mod.weight)
        for seq in head.cv3:
            seq[-1].weight.mul_(100.0)
            seq[-1].bias.fill_(-2.0)
    here = os.getcwd()
    try:
        os.chdir(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = folder / Path(yolo.export(format="onnx", imgsz=size, simplify=False,
                                             verbose=False)).name
    finally:
        os.chdir(here)
    net = yolo.model.fuse(verbose=False).eval()  # BatchNorm folded, as in the export
    m = ov.load(path, preprocess="unit", threads=threads)
    photo = data.astronaut()
    found = m.predict(photo, score_threshold=0.5, max_detections=boxes)
    levels = [layer for _, _, layer in feature_levels(m)]
    print(f"{threads} threads, YOLOv8n {size} px (random weights), {len(found)} boxes, levels "
          f"{[(a, b) for a, b, _ in feature_levels(m)]}")
    # the fused model's weights do not require grad: the input does, so the level's does
    xt = torch.from_numpy(m.normalize(m.to_pixels(photo))).requires_grad_(True)
    modules = {layer: head.cv3[i][1] for i, layer in enumerate(levels)}
    targets = [(int(a), int(c), modules[level_layer(m, int(a))])
               for a, c in zip(found.anchor, found.class_id)]

    def odam():
        ov.explain(m, photo, method="odam", score_threshold=0.5, max_detections=boxes)

    def torch_odam():
        for a, c, module in targets:
            feats = {}
            hook = module.register_forward_hook(lambda mod, i, o: feats.update(a=o))
            out = net(xt)[0]
            hook.remove()
            (g,) = torch.autograd.grad(out[0, 4 + c, a], feats["a"])
            torch.relu((g * feats["a"]).sum(1))

    odam()
    torch_odam()
    t_ours, t_torch = best(odam, repeats), best(torch_odam, repeats)
    print(f"{'ODAM, every box, YOLOv8n':40} onnxviz {t_ours:8.3f} s  "
          f"torch {t_torch:8.3f} s  speed-up {t_torch / t_ours:5.2f}x")
    drise_vs_floor(m, path, photo, masks, repeats, threads, " YOLOv8n", score_threshold=0.5,
                   max_detections=boxes)


if __name__ == "__main__":
    raise SystemExit(main())
