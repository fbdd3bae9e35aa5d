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
    out = []
    for _, src, img in files.iter_images(sources, skipped,
                                               args.strict or len(sources) == 1):  # one image at a time
        preds = model.predict([img], top=args.top)[0]
        name = printable(src)
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
    return files.summary(len(out), skipped, "prediction")
