"""``onnxviz dream MODEL IMAGE --layer L``: deep dream (MATLAB's ``deepDreamImage``).

Multi-scale gradient ascent on a real image (:func:`onnxviz.deep_dream`); every option of that
function is a flag. Writes ``<image>.<layer>.dream.png`` per image.
"""

from __future__ import annotations

import json

from . import files, options
from .activations import safe
from .common import add_model_args, load_model

SKIP = ("history",)


def register(subparsers) -> None:
    from ..inside import deep_dream

    p = subparsers.add_parser(
        "dream", allow_abbrev=False, help="deep dream: amplify what a layer sees in an image",
        description="Multi-scale gradient ascent on images that maximises a layer's channels.")
    add_model_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, folders of images, or skimage:NAME")
    p.add_argument("--layer", "-l", required=True, metavar="L",
                   help="layer name (see onnxviz inspect)")
    p.add_argument("--channels", metavar="LIST", help="channels to amplify, e.g. 0-7 (default all)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--debug", dest="sub_debug", action="store_true",
                   help="show the full traceback on errors")
    files.add_output_args(p)
    options.add_options(p, options.function_options(deep_dream, SKIP),
                        lambda _: ("deep dream options", None))
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import viz
    from ..inside import deep_dream

    kwargs = options.function_kwargs(deep_dream, options.given_options(args), SKIP)
    channels = options.parse_channels(args.channels)
    sources = files.expand_images(args.images)
    images = files.read_images(sources)
    folder = files.out_dir(args.out)
    model = load_model(args)
    layer = model.layer(args.layer).name
    with files.progress(len(images), "dreaming", args.quiet, unit="img") as bar:
        for stem, src, img in zip(files.stems(sources), sources, images):
            out = deep_dream(model, img, args.layer, channels, **kwargs)
            path = viz.write_png(folder / f"{stem}.{safe(layer)}.dream.png", out)
            bar.update(1)
            if args.json:
                print(json.dumps({"image": src, "layer": layer, "output": str(path),
                                  "params": kwargs}))
            else:
                print(path)
    return 0
