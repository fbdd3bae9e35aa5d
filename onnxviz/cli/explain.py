"""``onnxviz explain MODEL IMAGE_OR_DIR... --method M``: heatmap, overlay and mask PNGs per image.

Every method of the registry is available, with its options as flags (``onnxviz explain --help``
lists them by method). ``--json`` prints one JSON object per line, per image and method, for
pipelines: image, method, target, label, score, params, outputs (file paths), timings, extras.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from ..explainers.options import (for_model, method_kwargs, parse_methods, parse_target,
                                  with_progress)
from ..results import Record, dumps, out_dir, printable, stems, write_explanation_pngs
from . import files, options
from .common import IMAGES_HELP, add_common, load_model, model_command, warn
from .ray import add_engine_args, engine_of


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
    p.add_argument("--strict", action="store_true",
                   help="stop at the first image or method that fails (default: skip it, say "
                        "so, and go on; the exit status is 2 only when nothing was explained)")
    add_common(p, json_help="print one JSON object per image and method (JSON Lines)")
    files.add_output_args(p)
    files.add_render_args(p)
    options.add_method_options(p, names)
    add_engine_args(p)
    p.set_defaults(func=run)


def build_explainers(model, methods, given, quiet=False, strict=True, skipped=None):
    """One explainer per method (bad options fail before any work). A method that cannot run on
    ``model`` is skipped with one line and added to ``skipped`` unless ``strict``."""
    from ..errors import OnnxvizError
    from ..explainers.registry import get

    show = files.show_progress(quiet)
    out = []
    for m in methods:
        kwargs = with_progress(m, method_kwargs(m, given, strict), show)
        try:
            out.append(get(m)(model, **kwargs))
        except OnnxvizError as e:
            if strict or skipped is None:
                raise
            skipped.append((m, str(e)))
            warn(f"skipped {m}: {e}")
    return out


def explain_all(model, images, methods, given, target, quiet=False, strict=True):
    """Run every method on every image; yields ``(image index, Explanation)`` per image and method
    (images outer, so each image is decoded once; see :func:`run` for the streaming CLI)."""
    explainers = build_explainers(model, methods, given, quiet, strict)
    with files.progress(len(images) * len(explainers), "explaining", quiet, unit="map") as bar:
        for i, img in enumerate(images):
            for ex in explainers:
                bar.set_postfix_str(ex.name, refresh=False)
                (e,) = ex.explain([img], target=target)
                bar.update(1)
                yield i, e


def run(args) -> int:
    from ..errors import OnnxvizError

    if engine_of(args) == "ray":  # onnxviz.distributed: Ray Data, Parquet, resumable
        from .ray import cli_run

        return cli_run(args)

    methods = parse_methods(args.methods)
    given = options.given_options(args)
    for m in methods:  # convert and check every option before loading anything
        method_kwargs(m, given, strict=len(methods) == 1)
    render = files.render_of(args)
    target = parse_target(args.target)
    sources = files.expand_images(args.images)
    folder = out_dir(args.out)
    model = load_model(args)
    methods = for_model(methods, args.methods, model)
    names = stems(sources)
    skipped: list = []
    # one named method: its failure to apply is the answer; several (or all): skip and go on
    explainers = build_explainers(model, methods, given, args.quiet,
                                  args.strict or len(methods) == 1, skipped)
    strict = args.strict or len(sources) * len(explainers) == 1
    done = 0
    with files.progress(len(sources) * len(explainers), "explaining", args.quiet,
                        unit="map") as bar:
        for i, src, img in files.iter_images(sources, skipped, strict):
            for ex in explainers:
                bar.set_postfix_str(ex.name, refresh=False)
                try:
                    (e,) = ex.explain([img], target=target)
                except OnnxvizError as err:
                    if strict:
                        raise
                    skipped.append((f"{src} ({ex.name})", str(err)))
                    warn(f"skipped {ex.name} on {printable(src)}: {err}")
                    continue
                finally:
                    bar.update(1)
                stem = names[i] if target is None else f"{names[i]}.t{e.target}"
                paths = write_explanation_pngs(folder, stem, img, e, render)
                done += 1
                _print(args, src, e, paths)
    return files.summary(done, skipped, "map")


def _print(args, src, e, paths) -> None:
    from ..explainers.base import not_drawn

    if args.json:
        line = dumps(Record.of(printable(src), e, paths))
    else:
        t = e.timings.get("total", float("nan"))
        shown = paths.get("overlay", "not drawn: " + not_drawn(e))
        line = (f"{printable(src)}  {e.method:<20} {e.label} ({e.target}) "
                f"{e.score_kind} {e.score:.4g}  {t:.2f} s  -> {shown}")
    tqdm.write(line, file=sys.stdout)  # clears the progress bars first
    sys.stdout.flush()
