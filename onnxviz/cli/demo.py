"""``onnxviz demo``: every method on the bundled EfficientNet-Lite0 and scikit-image's cat.

Writes ``report.html`` (one self-contained page) and ``compare.png`` (the overlays side by side)
into ``--out`` and prints the report's path. The perturbation methods run with lighter settings
than their defaults so the demo takes a minute or two on a laptop; the report lists them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OnnxvizError
from ..explainers.options import for_model, parse_methods
from ..results import out_dir
from . import files, options
from .common import warn

MODEL_NAME = "efficientnet_lite0.onnx"

#: Lighter-than-default settings for the demo; options a method does not have are ignored.
DEMO_SETTINGS = {
    "occlusion": {"patch": 32, "stride": 16},
    "lime": {"num_samples": 300},
    "rise": {"num_masks": 1000},
    "smoothgrad": {"samples": 16},
    "integrated_gradients": {"steps": 16},
}


def find_model() -> Path:
    """The bundled model, shipped inside the package (:func:`onnxviz.bundled_model`)."""
    from ..data import bundled_model

    return bundled_model(MODEL_NAME.removesuffix(".onnx"))


def register(subparsers) -> None:

    p = subparsers.add_parser(
        "demo", allow_abbrev=False,
        help="every method that applies, on the bundled EfficientNet-Lite0 and a cat photo, as a report",
        description="Run every method that applies to the model (it says which it skips and why) on "
                    "the bundled EfficientNet-Lite0 and skimage.data.chelsea "
                    "and write an HTML report; prints its path.")
    p.add_argument("--out", "-o", default="onnxviz-demo", metavar="DIR",
                   help="output folder (default onnxviz-demo)")
    p.add_argument("--model", default=None, metavar="PATH",
                   help=f"model to use instead of the bundled {MODEL_NAME}")
    p.add_argument("--image", default="skimage:chelsea", metavar="IMAGE",
                   help="image to explain (default skimage:chelsea)")
    options.add_method_arg(p)
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="ONNX Runtime intra-op threads")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--debug", dest="sub_debug", action="store_true",
                   help="show the full traceback on errors")
    p.set_defaults(func=run)


def demo_settings(methods) -> dict[str, dict]:
    """The demo's options per method, keeping only options the method really has."""
    from ..explainers.registry import get

    out = {}
    for m in methods:
        known = get(m).options()
        out[m] = {k: v for k, v in DEMO_SETTINGS.get(m, {}).items() if k in known}
    return out


def say(line: str) -> None:
    """A progress line on stderr (the report's path alone goes to stdout)."""
    import sys

    print(f"onnxviz demo: {line}", file=sys.stderr, flush=True)


def run(args) -> int:
    from .. import load, viz
    from ..explainers.registry import get
    from .report import build_report, effective_settings, model_summary

    methods = parse_methods(args.methods or ["all"])
    folder = out_dir(args.out)
    model_path = Path(args.model) if args.model is not None else find_model()
    images = files.read_images([args.image])
    model = load(model_path, threads=args.threads)
    chosen = methods
    methods = for_model(methods, args.methods or ["all"], model)
    settings = demo_settings(methods)
    if not args.quiet:
        say(f"running {len(methods)} of {len(chosen)} methods on {model_path.name}"
            + (" with the lighter settings of the report's table" if settings else ""))
        for m in chosen:
            if m not in methods:
                say(f"skipped {m}: {get(m).applies_to(model)}")
    sections, failures = build_report(model, [args.image], images, methods, settings,
                                      quiet=args.quiet, say=None if args.quiet else say)
    for m, msg in failures.items():
        warn(f"{m}: {msg}")
    if len(failures) == len(methods):
        raise OnnxvizError(f"no method could run: {next(iter(failures.values()))}")
    sec = sections[0]
    viz.write_png(folder / "compare.png",
                  viz.compare(sec.image, {e.method: e.heatmap for e in sec.explanations},
                              height=160, cols=5, clip_percent=1.0))
    path = viz.write_report(
        folder / "report.html", sections, model_summary=model_summary(model),
        title=f"onnxviz demo: {model_path.name} on {args.image}",
        settings={m: effective_settings(m, s) for m, s in settings.items() if m not in failures},
        clip_percent=1.0)
    print(path)
    return 0
