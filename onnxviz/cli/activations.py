"""``onnxviz activations MODEL IMAGE... [--layer L]``: one grid of channel maps per layer.

Each channel is min-max normalised on its own, so weak channels still show their pattern. Writes
``<image>.<layer>.activations.png`` per image and layer.
"""

from __future__ import annotations

import json
import re
import sys

from ..explainers.options import parse_channels
from ..results import out_dir, stems, table
from . import files
from .common import add_common, load_model, model_command


def safe(name: str) -> str:
    """A layer name as a file-name part (``blocks.0/conv`` -> ``blocks.0_conv``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("._") or "layer"


def register(subparsers) -> None:
    from ..viz import COLORMAPS

    p = model_command(
        subparsers, "activations", help="grids of a layer's channel activations for images",
        description="Show what layers compute: one PNG grid of channel maps per image and layer.")
    p.add_argument("--layer", "-l", action="append", metavar="L",
                   help="layer name (repeatable; default every 4-D layer; see onnxviz inspect)")
    p.add_argument("--channels", metavar="LIST", help="channels to show, e.g. 0-7,12 "
                   "(default the first --max-channels)")
    p.add_argument("--max-channels", type=int, default=16, metavar="N",
                   help="channels shown per layer without --channels (default 16)")
    p.add_argument("--cmap", default="viridis", choices=COLORMAPS,
                   help="colormap (default viridis)")
    add_common(p, json_help="print one JSON object per image and layer")
    files.add_output_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import viz
    from ..errors import OptionError
    from ..inside import activations

    if args.max_channels < 1:
        raise OptionError(f"--max-channels must be >= 1, got {args.max_channels}")
    channels = parse_channels(args.channels)
    sources = files.expand_images(args.images)
    images = files.read_images(sources)
    folder = out_dir(args.out)
    model = load_model(args)
    layers = args.layer or [lay.name for lay in model.layers()]
    if not layers:
        raise OptionError("the model has no 4-D layers to show")
    rows = []
    names = stems(sources)
    with files.progress(len(images) * len(layers), "activations", args.quiet, unit="grid") as bar:
        for stem, src, img in zip(names, sources, images):
            acts = activations(model, img, layers=layers)
            for layer, act in acts.items():
                grid = viz.activation_grid(act, channels=channels, max_channels=args.max_channels,
                                           cmap=args.cmap, titles=True)
                path = viz.write_png(folder / f"{stem}.{safe(layer)}.activations.png", grid)
                rec = {"image": src, "layer": layer, "shape": list(act.shape), "output": str(path),
                       "min": float(act.min()), "max": float(act.max()), "mean": float(act.mean())}
                rows.append(rec)
                if args.json:
                    sys.stdout.write(json.dumps(rec) + "\n")
                bar.update(1)
    if not args.json:
        print(table([[r["image"], r["layer"], "x".join(map(str, r["shape"])), r["output"]]
                     for r in rows], ["image", "layer", "shape (C,h,w)", "grid"]))
    return 0
