"""``onnxviz predict MODEL IMAGE...``: the top classes of each image."""

from __future__ import annotations

from .common import add_common, add_model_args, load_model, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="top-k classes of images",
                              description="Classify images with an ONNX model.")
    add_model_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files (PNG, JPEG, BMP, TIFF) or skimage:NAME (e.g. skimage:chelsea)")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import OptionError

    if args.top < 1:
        raise OptionError(f"--top must be >= 1, got {args.top}")
    model = load_model(args)
    rows = model.predict(list(args.images), top=args.top)
    if args.json:
        print_json([{"image": img, "top": [{"index": p.index, "label": p.label, "score": p.score,
                                            "probability": p.probability} for p in preds]}
                    for img, preds in zip(args.images, rows)])
        return 0
    for n, (img, preds) in enumerate(zip(args.images, rows)):
        if n:
            print()
        print(img)
        for rank, p in enumerate(preds, 1):
            if p.probability is None:  # regression
                print(f"  {rank}. {p.label} = {p.score:.6g}")
            else:
                print(f"  {rank}. {100 * p.probability:6.2f}%  {p.label} ({p.index})  "
                      f"score {p.score:.4g}")
    return 0
