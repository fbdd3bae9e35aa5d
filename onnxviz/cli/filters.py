"""``onnxviz filters MODEL --layer L [--channels ...]``: what maximally excites each channel.

Gradient ascent from noise (:func:`onnxviz.visualize_filters`); every option of that function is a
flag. Writes ``<layer>.filters.png`` (a captioned grid) and ``<layer>.ch<N>.png`` per channel.
"""

from __future__ import annotations

from ..results import out_dir
from . import files
from .activations import safe
from .common import (
    add_common, add_function_options, add_layer_arg, function_args, load_model, model_command,
    print_output,
)

SKIP = ("history",)


def register(subparsers) -> None:
    from ..inside import visualize_filters

    p = model_command(
        subparsers, "filters", help="filter visualization: images that maximise channels of a layer",
        description="Gradient ascent on the input that maximises channels' mean activation.",
        images=None)
    add_layer_arg(p, channels_help="channels, e.g. 0-7,12 (default the first 8)")
    p.add_argument("--cols", type=int, default=None, metavar="N", help="grid columns")
    add_common(p, json_help="print the outputs as JSON")
    files.add_output_args(p)
    add_function_options(p, visualize_filters, SKIP, "filter visualization options")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import viz
    from ..errors import OptionError
    from ..inside import visualize_filters

    kwargs, channels = function_args(args, visualize_filters, SKIP)
    if args.cols is not None and args.cols < 1:
        raise OptionError(f"--cols must be >= 1, got {args.cols}")
    folder = out_dir(args.out)
    model = load_model(args)
    layer = model.layer(args.layer).name
    if channels is None:
        channels = list(range(min(8, _channels_of(model, args.layer))))
    images = []
    with files.progress(len(channels), f"filters of {layer}", args.quiet, unit="ch") as bar:
        for ch in channels:  # one at a time, so the progress bar moves
            images += visualize_filters(model, args.layer, [ch], **kwargs)
            bar.update(1)
    grid = viz.write_png(folder / f"{safe(layer)}.filters.png",
                         viz.filter_grid(images, channels=channels, cols=args.cols))
    singles = [str(viz.write_png(folder / f"{safe(layer)}.ch{c}.png", im))
               for c, im in zip(channels, images)]
    print_output(args, {"layer": layer, "channels": channels, "grid": str(grid),
                        "images": singles, "params": kwargs}, grid)
    return 0


def _channels_of(model, layer: str) -> int:
    """Number of channels of ``layer`` (from one run on a gray image)."""
    import numpy as np

    from ..inside import activations

    h, w = model.input.size
    act = activations(model, np.full((h, w, 3), 128, np.uint8), layers=[layer])
    return int(next(iter(act.values())).shape[0])
