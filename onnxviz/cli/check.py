"""``onnxviz check MODEL IMAGE_OR_DIR... --baseline DIR [--config gate.toml]``: does a new model
version still predict the same and look at the same places?

Recomputes the baseline's maps (same methods, options and targets) and holds them to the gate's
rules (:mod:`onnxviz.gate`). Prints a table; writes ``check.json``, ``junit.xml`` and
``diff/<image>.html`` (baseline map, new map, difference) for each failing image into ``--out``.
Exit status: 0 when every rule holds, 1 when one fails, 2 on bad input.
"""

from __future__ import annotations

import sys

from ..results import out_dir
from . import files
from .common import IMAGES_HELP, add_common, load_model, model_command, print_json


def register(subparsers) -> None:
    p = model_command(
        subparsers, "check", help="compare a model's explanations with a snapshot baseline "
                                  "(exit 1 when a rule fails)",
        description="Recompute the maps of an onnxviz snapshot baseline with MODEL and check the "
                    "rules: prediction, rank_correlation, top_overlap, roi, deletion. Exit 0 when "
                    "all hold, 1 when one fails, 2 on bad input.",
        images=IMAGES_HELP + " (the baseline's images, or some of them)")
    p.add_argument("--baseline", "-b", required=True, metavar="DIR",
                   help="folder written by onnxviz snapshot")
    p.add_argument("--config", "-c", metavar="TOML",
                   help="rule thresholds (gate.toml; see docs/gate.md); default: the defaults")
    p.add_argument("--masks", metavar="DIR",
                   help="regions of interest (override the baseline's): <image stem>.png/.npy "
                        "or boxes.json")
    add_common(p, json_help="print the result as JSON instead of the table")
    files.add_output_args(p, default_out="onnxviz-check")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..gate import baseline, config, output
    from ..gate.check import check, match_images

    conf = config.load(args.config)
    doc = baseline.read(args.baseline)
    sources, images, names, masks = files.images_and_masks(args.images, args.masks)
    match_images(doc, names, images)
    folder = out_dir(args.out)
    model = load_model(args)
    total = len(images) * len(doc["methods"])
    with files.progress(total, "checking", args.quiet, unit="map") as bar:
        result = check(model, images, names, doc, config=conf, masks=masks,
                             progress=lambda: bar.update(1))
    meta = {"model": str(args.model), "baseline": str(args.baseline),
            "config": str(args.config) if args.config else None}
    paths = {"json": output.write_json(folder / "check.json", result, **meta),
             "junit": output.write_junit(folder / "junit.xml", result),
             "diff_pages": output.write_diff_pages(folder / "diff", result,
                                                   dict(zip(names, images)))}
    if args.json:
        print_json({**output.to_json(result, **meta), "outputs": paths})
    else:
        print(output.table(result))
        print(f"wrote {paths['json']}, {paths['junit']}"
              + (f" and {len(paths['diff_pages'])} diff pages in {folder / 'diff'}"
                 if paths["diff_pages"] else ""), file=sys.stderr)
    return 0 if result.passed else 1
