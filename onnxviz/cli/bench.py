"""``onnxviz bench MODEL``: images per second of each method on this machine, as a table.

Each method first explains one image untimed (building sessions and gradient graphs, compiling
Numba kernels), then explains ``--images`` copies of the image in one call. The ``forward`` row is
the floor: plain inference of the same images.
"""

from __future__ import annotations

import time

from ..errors import OnnxvizError
from ..explainers.options import for_model, method_kwargs, parse_methods
from ..results import table
from . import options
from .common import add_model_args, load_model, print_json, warn


def register(subparsers) -> None:
    from ..explainers.registry import methods

    p = subparsers.add_parser(
        "bench", allow_abbrev=False, help="images/s of each method on this machine",
        description="Time every method (or --methods) on copies of one image; prints a table.")
    add_model_args(p)
    options.add_method_arg(p)
    p.add_argument("--image", default="skimage:chelsea", metavar="IMAGE",
                   help="image to explain (default skimage:chelsea)")
    p.add_argument("--images", type=int, default=4, metavar="N",
                   help="timed images per method (default 4)")
    p.add_argument("--quick", action="store_true",
                   help="the demo's lighter settings for the slow methods (occlusion stride 16, "
                        "LIME 300 samples, RISE 1000 masks, ...) and --images 1")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--debug", dest="sub_debug", action="store_true",
                   help="show the full traceback on errors")
    options.add_method_options(p, methods())
    p.set_defaults(func=run)


def bench_method(model, cls, kwargs, image, n):
    """Seconds to explain ``n`` copies of ``image`` with a warmed-up explainer."""
    ex = cls(model, **kwargs)
    ex.explain([image])  # warm-up: sessions, gradient graphs, Numba compilation
    t = time.perf_counter()
    ex.explain([image] * n)
    return time.perf_counter() - t


def bench_forward(model, image, n):
    x = model.preprocess([image] * n)
    model.forward(x[:1])
    t = time.perf_counter()
    model.forward(x)
    return time.perf_counter() - t


def run(args) -> int:
    from ..explainers.registry import get
    from ..imageio import read_image

    if not 1 <= args.images <= 10_000:
        raise OnnxvizError(f"--images must be between 1 and 10000, got {args.images}")
    methods = parse_methods(args.methods or ["all"])
    given = options.given_options(args)
    settings = {m: method_kwargs(m, given, strict=len(methods) == 1) for m in methods}
    if args.quick:
        from .demo import demo_settings

        settings = {m: {**demo_settings([m])[m], **kw} for m, kw in settings.items()}
    image = read_image(args.image)
    model = load_model(args)
    methods = for_model(methods, args.methods or ["all"], model)
    n = 1 if args.quick else args.images
    rows = [{"method": "forward (floor)", "images": n, "seconds": bench_forward(model, image, n),
             "params": {}}]
    for m in methods:
        try:
            secs = bench_method(model, get(m), settings[m], image, n)
        except OnnxvizError as e:
            warn(f"{m}: {e}")
            continue
        rows.append({"method": m, "images": n, "seconds": secs, "params": settings[m]})
    for r in rows:
        r["images_per_s"] = r["images"] / r["seconds"] if r["seconds"] > 0 else float("inf")
        r["ms_per_image"] = 1000.0 * r["seconds"] / r["images"]
    if args.json:
        print_json(rows)
        return 0
    threads = f"{args.threads} threads" if args.threads else "default threads"
    quick = ", --quick settings" if args.quick else ""
    print(f"{model.source}, {n} images of {args.image}, {threads}{quick}")
    print(table([[r["method"], f"{r['images_per_s']:.2f}", f"{r['ms_per_image']:.1f}"]
                 for r in rows], ["method", "images/s", "ms/image"]))
    return 0
