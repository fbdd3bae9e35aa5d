"""``onnxviz explain MODEL IMAGE_OR_DIR... --method M``: heatmap, overlay and mask PNGs per image.

Every method of the registry is available, with its options as flags (``onnxviz explain --help``
lists them by method). ``--json`` prints one JSON object per line, per image and method, for
pipelines: image, method, target, label, score, params, outputs (file paths), timings, extras.
"""

from __future__ import annotations

import json
import sys

from tqdm import tqdm

from . import files, options
from .common import IMAGES_HELP, add_common, load_model, model_command


def register(subparsers) -> None:
    from ..explainers.registry import methods

    names = methods()
    p = model_command(
        subparsers, "explain",
        help="explain images with one or more methods (PNG heatmaps, overlays, masks)",
        description="Explain an ONNX classifier's decision on images. Writes "
                    "<image>.<method>.heatmap.png (at the model's input size), .overlay.png and "
                    ".mask.png (at the image's size) into --out.",
        images=IMAGES_HELP + " (e.g. skimage:chelsea)")
    options.add_method_arg(p, required=True)
    p.add_argument("--target", "-t", metavar="T",
                   help="class to explain: index or label (default: each image's top-1 class)")
    p.add_argument("--npy", action="store_true", help="also save each heatmap as float32 .npy")
    add_common(p, json_help="print one JSON object per image and method (JSON Lines)")
    files.add_output_args(p)
    files.add_render_args(p)
    options.add_method_options(p, names)
    p.set_defaults(func=run)


def explain_all(model, images, methods, given, target, quiet=False, strict=True):
    """Run every method on every image; yields ``(image index, Explanation)`` per image and method.

    Each method's explainer is built once (bad options fail before any work) and runs the images
    one at a time, so the progress bar moves and memory stays bounded.
    """
    from ..explainers.registry import get

    show = files.show_progress(quiet)
    explainers = [get(m)(model, **options.with_progress(m, options.method_kwargs(m, given, strict),
                                                         show))
                  for m in methods]
    with files.progress(len(images) * len(methods), "explaining", quiet, unit="map") as bar:
        for ex in explainers:
            for i, img in enumerate(images):
                bar.set_postfix_str(ex.name, refresh=False)
                (e,) = ex.explain([img], target=target)
                bar.update(1)
                yield i, e


def record(source: str, e, paths: dict) -> dict:
    """The ``--json`` object of one explanation."""
    d = e.to_dict()
    return {"image": source, "method": d["method"], "target": d["target"], "label": d["label"],
            "score": d["score"], "params": d["params"], "outputs": paths, "timings": d["timings"],
            "extras": d["extras"]}


def run(args) -> int:
    methods = options.parse_methods(args.methods)
    given = options.given_options(args)
    for m in methods:  # convert and check every option before loading anything
        options.method_kwargs(m, given, strict=len(methods) == 1)
    files.check_render_args(args)
    target = options.parse_target(args.target)
    sources = files.expand_images(args.images)
    images = files.read_images(sources)
    folder = files.out_dir(args.out)
    model = load_model(args)
    methods = options.for_model(methods, args.methods, model)
    names = files.stems(sources)
    for i, e in explain_all(model, images, methods, given, target, args.quiet,
                            strict=len(methods) == 1):
        paths = files.write_explanation_pngs(folder, names[i], images[i], e, args)
        if args.json:
            line = json.dumps(record(sources[i], e, paths))
        else:
            t = e.timings.get("total", float("nan"))
            line = (f"{sources[i]}  {e.method:<20} {e.label} ({e.target}) score {e.score:.4g}  "
                    f"{t:.2f} s  -> {paths['overlay']}")
        tqdm.write(line, file=sys.stdout)  # clears the progress bars first
        sys.stdout.flush()
    return 0
