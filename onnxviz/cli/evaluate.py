"""``onnxviz evaluate MODEL IMAGE_OR_DIR... --method all [--masks DIR]``: how good are the maps?

Explains every image with every method, scores each map with the metrics of
:mod:`onnxviz.metrics`, prints a method x metric table (mean and 95 % interval over the images)
and writes into ``--out``: ``metrics.json`` (summary and per-image records with curves),
``metrics.csv`` (the summary), ``metrics_per_image.csv`` and ``report.html`` (the overlays, the
table and the deletion/insertion curves per method).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import OptionError
from ..explainers.options import convert, for_model, method_kwargs, parse_methods, parse_target
from ..results import out_dir, stems, table
from . import files, options
from .common import (IMAGES_HELP, add_common, add_detection_args, load_model, model_command,
                     nms_of, print_json)


def register(subparsers) -> None:
    from .. import metrics
    from ..explainers.registry import methods

    lines = []
    for name in metrics.names():
        m = metrics.get(name)
        opts = ", ".join(f"{o}={options.describe_default(p)}" for o, p in m.options().items())
        lines.append(f"  {name:<21} {'↑' if m.higher_is_better else '↓'} {m.summary}"
                     + (f" [{opts}]" if opts else "") + (" (needs --masks)" if m.needs_mask
                                                          else ""))
    p = model_command(
        subparsers, "evaluate", help="score explanation methods with faithfulness metrics",
        description="Explain images with each method and score the maps: deletion/insertion "
                    "AUC, ROAD, pointing games, sparseness, randomisation sanity check.",
        images=IMAGES_HELP)
    p.epilog = "metrics (↑ higher is better, ↓ lower is better):\n" + "\n".join(lines)
    p.formatter_class = _RawEpilog
    options.add_method_arg(p)
    p.add_argument("--metrics", "--metric", dest="metrics", action="append", metavar="N[,N...]",
                   help="metrics, a comma list or 'all' (default all)")
    p.add_argument("--metric-option", action="append", default=[], metavar="METRIC.OPT=VALUE",
                   help="an option of one metric, e.g. deletion.steps=20 (repeatable)")
    p.add_argument("--masks", metavar="DIR",
                   help="region masks: <image stem>.png/.npy per image or boxes.json "
                        "(pointing games; images without one are left out of them; a "
                        "detector's box is its own region)")
    p.add_argument("--target", "-t", metavar="T",
                   help="class to explain: index or label (default: each image's top-1 class)")
    add_common(p, json_help="print the summary as JSON instead of the table")
    add_detection_args(p)
    files.add_output_args(p, default_out="onnxviz-metrics")
    options.add_method_options(p, methods())
    p.set_defaults(func=run)


class _RawEpilog(__import__("argparse").HelpFormatter):
    def _fill_text(self, text, width, indent):
        return "".join(indent + line + "\n" for line in text.splitlines())


def metric_options(items: list[str]) -> dict[str, dict]:
    """``["deletion.steps=20", ...]`` -> ``{"deletion": {"steps": 20}}``, converted per option."""
    from .. import metrics

    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, opt = key.strip().partition(".")
        if not sep or not dot or not opt:
            raise OptionError(f"--metric-option expects METRIC.OPTION=VALUE, got {item!r}")
        params = metrics.get(name).options()
        if opt not in params:
            raise OptionError(f"metric {name!r} has no option {opt!r}; its options: "
                              f"{', '.join(params) or 'none'}")
        out.setdefault(name, {})[opt] = convert(raw, params[opt], opt)
    return out


def read_region_masks(folder, sources, images, size):
    """The ``--masks`` regions at the model's input size (None per image without one)."""
    from ..metrics.masks import read_masks, to_input_size

    if folder is None:
        return [None] * len(images)
    names = stems(sources)
    keys = [Path(s).name for s in sources]
    found = read_masks(folder, names, [im.shape[:2] for im in images], keys)
    return [to_input_size(m, size) for m in found]


def run(args) -> int:
    from .. import metrics
    from ..metrics.evaluate import (score_one, summarize, table_rows, write_csv, write_json,
                                    write_records_csv)
    from ..viz import ReportImage, write_report
    from .explain import explain_all
    from .report import model_summary

    spec = args.methods or ["all"]
    methods = parse_methods(spec)
    given = options.given_options(args)
    for m in methods:
        method_kwargs(m, given, strict=len(methods) == 1)
    names = metrics.parse(args.metrics or ["all"])
    opts = metric_options(args.metric_option)
    target = parse_target(args.target)
    sources = files.expand_images(args.images)
    images = files.read_images(sources)
    folder = out_dir(args.out)
    model = load_model(args)
    nms = nms_of(args, model)
    if model.task == "detect" and args.masks is not None:
        raise OptionError("--masks is for classifiers and segmenters: each box of a detector is "
                          "the region of its own pointing game")
    masks = read_region_masks(args.masks, sources, images, model.input.size)
    if args.masks is None and model.task != "detect":
        names = [n for n in names if not metrics.get(n).needs_mask or args.metrics]
    methods = for_model(methods, spec, model)
    sections = [ReportImage(s, im) for s, im in zip(sources, images)]
    records = []
    with files.progress(len(images) * len(methods), "scoring", args.quiet, unit="map") as bar:
        for i, e in explain_all(model, images, methods, given, target, quiet=True,
                                strict=len(methods) == 1, nms=nms):
            bar.set_postfix_str(e.method, refresh=False)
            records.append(score_one(model, e, names, masks[i], opts, sources[i]))
            sections[i].explanations.append(e)
            bar.update(1)
    summary = summarize(records)
    meta = {"model": str(args.model), "metrics": names, "methods": methods,
            "metric_options": opts}
    paths = {"json": write_json(folder / "metrics.json", records, summary, **meta),
             "csv": write_csv(folder / "metrics.csv", summary),
             "per_image_csv": write_records_csv(folder / "metrics_per_image.csv", records),
             "report": write_report(folder / "report.html", sections,
                                    model_summary=model_summary(model),
                                    title=f"onnxviz metrics: {Path(args.model).name}",
                                    metrics={"summary": summary, "records": records})}
    if args.json:
        print_json({"summary": summary, "outputs": paths})
    else:
        headers, rows = table_rows(summary)
        print(table(rows, headers))
        print(f"{len(images)} images; mean [95% interval]; wrote "
              + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
