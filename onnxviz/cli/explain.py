"""``onnxviz explain MODEL IMAGE_OR_DIR... --method M``: heatmap, overlay and mask PNGs per image.

Every method of the registry is available, with its options as flags (``onnxviz explain --help``
lists them by method). ``--json`` prints one JSON object per line, per image and method, for
pipelines: image, method, target, label, score, params, outputs (file paths), timings, extras.

A detector gives one result per image, box and method (its files ``<image>.box<K>.<method>.*``,
the box drawn on the overlay and the mask, and ``<image>.<method>.boxes.png`` with every box of
the image); a segmenter one per image, class region and method (``<image>.<class>.<method>.*``).
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from ..explainers.options import (for_model, method_kwargs, parse_methods, parse_target,
                                  with_progress)
from ..results import (Record, dumps, out_dir, printable, stems, target_stem, write_box_grid,
                       write_explanation_pngs)
from . import files, options
from .common import (IMAGES_HELP, add_common, add_detection_args, load_model, model_command,
                     nms_of, warn)
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
                   help="class to explain: index or label (default: each image's top-1 class); "
                        "for a detector, a detection's index (default: every detection) or, "
                        "with --box, the box's class; for a segmenter, the class whose region "
                        "to explain (default: every predicted class)")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1",
                   help="detectors: explain this box (photo pixels) of class --target, matched "
                        "to the detector's best-overlapping candidate of that class")
    p.add_argument("--mask", metavar="PNG",
                   help="segmenters: explain class --target over this region (a picture of the "
                        "photo's size; non-black pixels are the region)")
    p.add_argument("--npy", action="store_true", help="also save each heatmap as float32 .npy")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first image or method that fails (default: skip it, say "
                        "so, and go on; the exit status is 2 only when nothing was explained)")
    add_common(p, json_help="print one JSON object per image and method (JSON Lines)")
    add_detection_args(p)
    files.add_output_args(p)
    files.add_render_args(p)
    options.add_method_options(p, names)
    add_engine_args(p)
    p.set_defaults(func=run)


def build_explainers(model, methods, given, quiet=False, strict=True, skipped=None, nms=None):
    """One explainer per method (bad options fail before any work): the method's own for a
    classifier, a :class:`~onnxviz.explainers.dense.TargetExplainer` for a detector's boxes (after
    NMS with ``nms``) or a segmenter's regions. A method that cannot run on ``model`` is skipped
    with one line and added to ``skipped`` unless ``strict``."""
    from ..errors import OnnxvizError
    from ..explainers.dense import explainer

    show = files.show_progress(quiet)
    out = []
    for m in methods:
        kwargs = with_progress(m, method_kwargs(m, given, strict), show)
        try:
            out.append(explainer(model, m, kwargs, nms))
        except OnnxvizError as e:
            if strict or skipped is None:
                raise
            skipped.append((m, str(e)))
            warn(f"skipped {m}: {e}")
    return out


def explain_all(model, images, methods, given, target, quiet=False, strict=True, nms=None):
    """Run every method on every image; yields ``(image index, Explanation)`` per image and method
    (per box or region of a detector or a segmenter), images outer, so each image is decoded
    once (see :func:`run` for the streaming CLI)."""
    explainers = build_explainers(model, methods, given, quiet, strict, nms=nms)
    with files.progress(len(images) * len(explainers), "explaining", quiet, unit="map") as bar:
        for i, img in enumerate(images):
            for ex in explainers:
                bar.set_postfix_str(ex.name, refresh=False)
                found = ex.explain([img], target=target)
                bar.update(1)
                for e in found:
                    yield i, e


def target_of(args, model):
    """The target of ``--target`` (with ``--box`` or ``--mask``): a class, a detection index, a
    user's box or a user's region (:func:`onnxviz.explain`'s ``target``)."""
    from ..errors import OptionError

    target = parse_target(args.target)
    box, mask = getattr(args, "box", None), getattr(args, "mask", None)
    if box is not None:
        if model.task != "detect":
            raise OptionError(f"--box is for detectors; this model is a {model.task} model")
        if target is None:
            raise OptionError("--box needs the box's class: --target LABEL")
        try:
            xyxy = [float(v) for v in box.split(",")]
        except ValueError:
            xyxy = []
        if len(xyxy) != 4:
            raise OptionError(f"--box is four numbers X0,Y0,X1,Y1, got {box!r}")
        return {"box": xyxy, "label": target}
    if mask is not None:
        from ..imageio import read_image

        if model.task != "segment":
            raise OptionError(f"--mask is for segmenters; this model is a {model.task} model")
        if target is None:
            raise OptionError("--mask needs the region's class: --target LABEL")
        return {"label": target, "mask": read_image(mask).max(axis=2) > 0}
    return target


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
    parse_target(args.target)
    sources = files.expand_images(args.images)
    folder = out_dir(args.out)
    model = load_model(args)
    target = target_of(args, model)
    nms = nms_of(args, model)
    methods = for_model(methods, args.methods, model)
    names = stems(sources)
    skipped: list = []
    # one named method: its failure to apply is the answer; several (or all): skip and go on
    explainers = build_explainers(model, methods, given, args.quiet,
                                  args.strict or len(methods) == 1, skipped, nms)
    strict = args.strict or len(sources) * len(explainers) == 1
    done = 0
    with files.progress(len(sources) * len(explainers), "explaining", args.quiet,
                        unit="map") as bar:
        for i, src, img in files.iter_images(sources, skipped, strict):
            for ex in explainers:
                bar.set_postfix_str(ex.name, refresh=False)
                try:
                    found = ex.explain([img], target=target)
                except OnnxvizError as err:
                    if strict:
                        raise
                    skipped.append((f"{src} ({ex.name})", str(err)))
                    warn(f"skipped {ex.name} on {printable(src)}: {err}")
                    continue
                finally:
                    bar.update(1)
                written = [(e, write_explanation_pngs(folder, target_stem(names[i], e, k, target),
                                                      img, e, render))
                           for k, e in enumerate(found)]
                if model.task == "detect":
                    grid = write_box_grid(folder, names[i], ex.name, img, written, render)
                    written = [(e, {**paths, **grid}) for e, paths in written]
                for e, paths in written:
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
        what = f"{e.label} ({e.target})"
        if e.box is not None:
            what += " box [" + ", ".join(f"{v:.0f}" for v in e.box) + "]"
        elif e.region is not None:
            what += f" region {100 * e.region['area']:.1f}%"
        line = (f"{printable(src)}  {e.method:<20} {what} "
                f"{e.score_kind} {e.score:.4g}  {t:.2f} s  -> {shown}")
    tqdm.write(line, file=sys.stdout)  # clears the progress bars first
    sys.stdout.flush()
