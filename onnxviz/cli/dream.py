"""``onnxviz dream MODEL IMAGE --layer L``: deep dream (MATLAB's ``deepDreamImage``).

Multi-scale gradient ascent on a real image (:func:`onnxviz.deep_dream`); every option of that
function is a flag. Writes ``<image>.<layer>.dream.png`` per image.
"""

from __future__ import annotations

from ..results import out_dir, stems
from . import files
from .activations import safe
from .common import (
    add_common, add_function_options, add_layer_arg, function_args, load_model, model_command,
    print_output,
)

SKIP = ("history",)


def register(subparsers) -> None:
    from ..inside import deep_dream

    p = model_command(
        subparsers, "dream", help="deep dream: amplify what a layer sees in an image",
        description="Multi-scale gradient ascent on images that maximises a layer's channels.")
    add_layer_arg(p, channels_help="channels to amplify, e.g. 0-7 (default all)")
    add_common(p, json_help="print one JSON object per image")
    files.add_output_args(p)
    add_function_options(p, deep_dream, SKIP, "deep dream options")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import viz
    from ..inside import deep_dream

    kwargs, channels = function_args(args, deep_dream, SKIP)
    sources = files.expand_images(args.images)
    images = files.read_images(sources)
    folder = out_dir(args.out)
    model = load_model(args)
    layer = model.layer(args.layer).name
    with files.progress(len(images), "dreaming", args.quiet, unit="img") as bar:
        for stem, src, img in zip(stems(sources), sources, images):
            out = deep_dream(model, img, args.layer, channels, **kwargs)
            path = viz.write_png(folder / f"{stem}.{safe(layer)}.dream.png", out)
            bar.update(1)
            print_output(args, {"image": src, "layer": layer, "output": str(path),
                                "params": kwargs}, path)
    return 0
