"""``onnxviz report MODEL IMAGE... --methods ...``: one self-contained HTML page.

The page shows each image, its top-5 prediction, every method's overlay side by side (with the
heatmap and a top-20% mask), the timings, the settings each method ran with and a model summary.
A method that cannot run on this model (CAM without a GAP -> dense head, say) is shown as such and
reported on stderr; the other methods still run.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OnnxvizError
from . import files, options
from .common import load_model, model_command, warn


def register(subparsers) -> None:
    from ..explainers.registry import methods

    p = model_command(
        subparsers, "report", help="one self-contained HTML page comparing methods on images",
        description="Explain images with several methods; write one HTML page (images embedded).")
    options.add_method_arg(p)
    p.add_argument("--target", "-t", metavar="T", help="class to explain (default: top-1)")
    p.add_argument("--top", type=int, default=5, help="classes in the prediction table (default 5)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--out", "-o", default="onnxviz-report", metavar="DIR",
                   help="output folder; the page is DIR/report.html (default onnxviz-report; "
                        "a path ending in .html names the file itself)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--debug", dest="sub_debug", action="store_true",
                   help="show the full traceback on errors")
    g = p.add_argument_group("rendering")
    from ..viz import COLORMAPS

    g.add_argument("--cmap", default="jet", choices=COLORMAPS, help="colormap (default jet)")
    g.add_argument("--alpha", type=float, default=0.4, help="overlay heatmap weight (default 0.4)")
    files.add_clip_arg(g)
    options.add_method_options(p, methods())
    p.set_defaults(func=run)


def model_summary(model) -> dict:
    """The rows of the report's model table."""
    from .inspect import describe

    d = describe(model)
    i, lab = d["input"], d["labels"]
    size = f"{i['size'][0]}x{i['size'][1]}"
    return {
        "file": d["model"] or "in-memory",
        "producer": d["producer"],
        "opset": d["opset"],
        "input": f"{i['name']} {i['layout']} {size}, {i['channels']} channels",
        "preprocessing": model.preprocessing.describe(),
        "score output": d["score_output"] + (" (logits, then Softmax)" if d["prob_output"] else ""),
        "classes": d["num_classes"],
        "labels": f"{lab['count']} from {lab['source']}" if lab["count"] else "none",
        "4-D layers": len(d["layers"]),
    }


def build_report(model, sources, images, methods, settings, target=None, quiet=False, top=5):
    """Explain every image with every method; returns ``(sections, failures by method)``.

    ``settings`` is ``{method: kwargs}``. A method that raises an :class:`OnnxvizError` is recorded
    as failed for every image instead of stopping the report.
    """
    from ..explainers.registry import get
    from ..viz import ReportImage

    preds = model.predict(images, top=top)
    def top(pr):
        return [(p.label, p.score if p.probability is None else p.probability) for p in pr]

    sections = [ReportImage(s, img, predictions=top(pr))
                for s, img, pr in zip(sources, images, preds)]
    failures = {}
    with files.progress(len(images) * len(methods), "explaining", quiet, unit="map") as bar:
        for m in methods:
            bar.set_postfix_str(m, refresh=False)
            done = 0
            try:
                kwargs = options.with_progress(m, settings.get(m, {}), files.show_progress(quiet))
                ex = get(m)(model, **kwargs)
                for sec, img in zip(sections, images):
                    (e,) = ex.explain([img], target=target)
                    sec.explanations.append(e)
                    done += 1
                    bar.update(1)
            except OnnxvizError as err:
                failures[m] = str(err)
                for sec in sections:
                    sec.explanations = [e for e in sec.explanations if e.method != m]
                    sec.failures[m] = str(err)
                bar.update(len(images) - done)
    return sections, failures


def effective_settings(method: str, kwargs: dict) -> dict:
    """Every option of ``method`` with the value it runs with (defaults filled in)."""
    from ..explainers.registry import get

    out = {n: p.default for n, p in get(method).options().items()}
    out.update(kwargs)
    return out


def run(args) -> int:
    from ..viz import write_report

    if args.top < 1:
        raise OnnxvizError(f"--top must be >= 1, got {args.top}")
    if not 0.0 <= args.alpha <= 1.0:
        raise OnnxvizError(f"--alpha must be in [0, 1], got {args.alpha}")
    if not 0.0 <= args.clip < 100.0:
        raise OnnxvizError(f"--clip must be in [0, 100), got {args.clip}")
    methods = options.parse_methods(args.methods or ["all"])
    given = options.given_options(args)
    settings = {m: options.method_kwargs(m, given, strict=len(methods) == 1) for m in methods}
    target = options.parse_target(args.target)
    sources = files.expand_images(args.images)
    skipped: list = []
    read = list(files.iter_images(sources, skipped))
    if not read:
        raise OnnxvizError(f"no image could be read: {skipped[0][1]}")
    sources = [files.printable(src) for _, src, _ in read]
    images = [img for _, _, img in read]
    out = Path(args.out) if str(args.out).lower().endswith(".html") else \
        files.out_dir(args.out) / "report.html"
    model = load_model(args)
    methods = options.for_model(methods, args.methods or ["all"], model)
    sections, failures = build_report(model, sources, images, methods, settings, target,
                                      args.quiet, args.top)
    for m, msg in failures.items():
        warn(f"{m}: {msg}")
    if len(failures) == len(methods):
        raise OnnxvizError(f"no method could run: {next(iter(failures.values()))}")
    path = write_report(out, sections, model_summary=model_summary(model),
                        title=args.title or f"onnxviz report: {Path(args.model).name}",
                        settings={m: effective_settings(m, s) for m, s in settings.items()
                                  if m not in failures},
                        alpha=args.alpha, cmap=args.cmap, clip_percent=args.clip)
    print(path)
    return 0
