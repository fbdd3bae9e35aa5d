"""``onnxviz snapshot MODEL IMAGE_OR_DIR... --method M... --out baseline/``: record a baseline for
``onnxviz check``: each map (.npy), target, score, top-1 prediction and deletion AUC, in a
``manifest.json`` (see :mod:`onnxviz.gate.baseline`). With ``--masks``, the regions of interest
are kept in the baseline too, for ``check``'s region rule.
"""

from __future__ import annotations


from ..explainers.options import for_model, method_kwargs, parse_methods
from ..results import out_dir
from . import files, options
from .common import IMAGES_HELP, add_common, load_model, model_command, print_json


def register(subparsers) -> None:
    from ..explainers.registry import methods

    p = model_command(
        subparsers, "snapshot", help="record maps, targets, scores and metrics as a gate baseline",
        description="Record what a model predicts and where its explanations look, for "
                    "onnxviz check: maps/<image>.<method>.npy and manifest.json in --out.",
        images=IMAGES_HELP)
    options.add_method_arg(p, required=True)
    p.add_argument("--masks", metavar="DIR",
                   help="regions of interest kept in the baseline (<image stem>.png/.npy or "
                        "boxes.json), for check's roi rule")
    p.add_argument("--metric-option", action="append", default=[], metavar="METRIC.OPT=VALUE",
                   help="options of the recorded metrics, e.g. deletion.steps=20")
    add_common(p, json_help="print the manifest's path and records as JSON")
    files.add_output_args(p, default_out="onnxviz-baseline")
    options.add_method_options(p, methods())
    p.set_defaults(func=run)


def run(args) -> int:
    from ..gate import baseline
    from .evaluate import metric_options

    methods = parse_methods(args.methods)
    given = options.given_options(args)
    settings = {m: method_kwargs(m, given, strict=len(methods) == 1) for m in methods}
    opts = metric_options(args.metric_option)
    sources, images, names, masks = files.images_and_masks(args.images, args.masks)
    folder = out_dir(args.out)
    model = load_model(args)
    methods = for_model(methods, args.methods, model)
    settings = {m: settings[m] for m in methods}
    with files.progress(len(images) * len(methods), "snapshot", args.quiet, unit="map") as bar:
        records = baseline.observe(model, images, names, settings, masks=masks,
                                   metric_options=opts, progress=lambda: bar.update(1))
    path = baseline.write(folder, args.model, model, names, sources, images, settings, records,
                          masks=masks, metric_options=opts)
    if args.json:
        print_json({"manifest": str(path), "records": [
            {k: v for k, v in r.items() if k != "map"} for r in records]})
    else:
        print(path)
    return 0
