"""``onnxviz predict MODEL IMAGE...``: the top classes of each image."""

from __future__ import annotations

from ..results import printable
from .common import (IMAGES_HELP, add_common, add_detection_args, add_images_arg, add_model_args,
                     load_model, nms_of, print_json)


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="top-k classes of images", allow_abbrev=False,
                              description="Classify images with an ONNX model: image files, "
                                          "folders of images, or skimage:NAME.")
    add_model_args(p)
    add_images_arg(p, help=IMAGES_HELP + " (e.g. skimage:chelsea)")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    add_detection_args(p)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable image (default: skip it and say so)")
    add_common(p, json_help="print a JSON list (one object per image)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import OptionError
    from . import files

    if not 1 <= args.top <= 100_000:
        raise OptionError(f"--top must be between 1 and 100000, got {args.top}")
    sources = files.expand_images(args.images)
    model = load_model(args)
    skipped: list = []
    out, images = [], 0
    dense = {} if model.task == "classify" else {
        "score_threshold": 0.25, "iou_threshold": 0.45, "max_detections": 300}
    if model.task == "detect":
        dense.update(nms_of(args, model))
    else:
        nms_of(args, model)  # given for a classifier or a segmenter: refused
    for _, src, img in files.iter_images(sources, skipped,
                                               args.strict or len(sources) == 1):  # one image at a time
        preds = model.predict([img], top=args.top, **dense)[0]
        name = printable(src)
        images += 1
        if dense:
            out.extend(_dense(args, model, name, preds, images > 1))
            continue
        if args.json:
            out.append({"image": name, "top": [
                {"index": p.index, "label": p.label, "score": p.score,
                 "probability": p.probability} for p in preds]})
            continue
        if len(out):
            print()
        out.append(name)
        print(name)
        for rank, p in enumerate(preds, 1):
            if p.probability is None:  # regression
                print(f"  {rank}. {p.label} = {p.score:.6g}")
            else:
                print(f"  {rank}. {100 * p.probability:6.2f}%  {p.label} ({p.index})  "
                      f"logit {p.score:.4g}")
    if args.json:
        print_json(out)
    return files.summary(images, skipped, "prediction")


def _dense(args, model, name: str, found, gap: bool) -> list:
    """A detector's detections or a segmenter's classes for one image: printed, or their JSON
    records (one per detection or class, each naming its image)."""
    records = found.records()
    if args.json:
        return [{"image": name, **r} for r in records]
    if gap:
        print()
    print(name)
    if model.task == "detect" and not records:
        threshold = 0.25 if args.score_threshold is None else args.score_threshold
        print(f"  no detection scoring {threshold:g} or more")
    for rank, r in enumerate(records, 1):
        if model.task == "detect":
            box = ", ".join(f"{v:.1f}" for v in r["box"])
            print(f"  {rank}. {100 * r['score']:6.2f}%  {r['label']} ({r['class']})  box "
                  f"[{box}]")
        else:
            print(f"  {rank}. {100 * r['area']:6.2f}% of the image  {r['label']} ({r['class']})")
    return [name]
