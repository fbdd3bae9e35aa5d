"""``onnxviz predict MODEL IMAGE...``: the top classes of each image."""

from __future__ import annotations

from ..results import printable
from .common import IMAGES_HELP, add_common, add_images_arg, add_model_args, load_model, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="top-k classes of images", allow_abbrev=False,
                              description="Classify images with an ONNX model: image files, "
                                          "folders of images, or skimage:NAME.")
    add_model_args(p)
    add_images_arg(p, help=IMAGES_HELP + " (e.g. skimage:chelsea)")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    g = p.add_argument_group("detectors")
    g.add_argument("--score-threshold", type=float, default=0.25, metavar="S",
                   help="keep detections scoring at least S (default 0.25)")
    g.add_argument("--iou-threshold", type=float, default=0.45, metavar="T",
                   help="NMS: drop a box overlapping a better one of its class by more than T "
                        "(default 0.45)")
    g.add_argument("--max-detections", type=int, default=300, metavar="N",
                   help="at most N detections per image (default 300)")
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
        "score_threshold": args.score_threshold, "iou_threshold": args.iou_threshold,
        "max_detections": args.max_detections}
    if model.task == "classify" and (args.score_threshold, args.iou_threshold,
                                     args.max_detections) != (0.25, 0.45, 300):
        raise OptionError("--score-threshold, --iou-threshold and --max-detections are for "
                          "detectors; this model is a classifier")
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
        print(f"  no detection scoring {args.score_threshold:g} or more")
    for rank, r in enumerate(records, 1):
        if model.task == "detect":
            box = ", ".join(f"{v:.1f}" for v in r["box"])
            print(f"  {rank}. {100 * r['score']:6.2f}%  {r['label']} ({r['class']})  box "
                  f"[{box}]")
        else:
            print(f"  {rank}. {100 * r['area']:6.2f}% of the image  {r['label']} ({r['class']})")
    return [name]
