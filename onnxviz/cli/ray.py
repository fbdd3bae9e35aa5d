"""``onnxviz explain ... --engine ray``: the explain subcommand's flags handed to
:func:`onnxviz.distributed.explain_dataset`.

``onnxviz/cli/explain.py`` adds the flags with :func:`add_engine_args` and hands over in ``run`` when
:func:`engine_of` says ``ray``. Nothing here imports Ray until a run asks for it.
"""

from __future__ import annotations

import json
import sys
import warnings

from ..errors import OptionError
from ..explainers.options import method_kwargs, parse_methods, parse_target
from . import files, options
from .common import nms_of, warn

ENGINES = ("local", "ray")


def add_engine_args(parser) -> None:
    """``--engine``, and the Ray engine's ``--address``, ``--workers``, ``--retry-errors``,
    ``--no-png``."""
    g = parser.add_argument_group(
        "engine", "where the work runs; with ray, --out receives Parquet tables and PNGs, and a "
                  "rerun skips what is already there (see onnxviz.distributed)")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process (default); ray: a Ray cluster (pip install "
                        "'onnxviz[ray]')")
    g.add_argument("--address", metavar="ADDR",
                   help="ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); default "
                        "RAY_ADDRESS, or the one 'ray start' runs on this machine, else a new "
                        "local cluster for this run")
    g.add_argument("--workers", type=int, metavar="N",
                   help="ray: actors, one ONNX Runtime session each (default: as many as the "
                        "cluster's CPUs allow)")
    g.add_argument("--retry-errors", action="store_true",
                   help="ray: explain again the images of the errors table")
    g.add_argument("--no-png", action="store_true",
                   help="ray: the Parquet tables only (each map is in the 'heatmap' column)")
    g.add_argument("--verbose", action="store_true",
                   help="ray: show Ray's own logs (by default only its errors; the rest stays in "
                        "its session folder)")


def engine_of(args) -> str:
    """``"ray"`` or ``"local"``; a Ray-only flag given with the local engine is refused."""
    if args.engine == "ray":
        return "ray"
    for name, given in (("--address", args.address is not None),
                        ("--workers", args.workers is not None),
                        ("--retry-errors", args.retry_errors),
                        ("--no-png", args.no_png),
                        ("--verbose", args.verbose)):
        if given:
            raise OptionError(f"{name} is an option of --engine ray (the local engine runs here)")
    return "local"


def cli_run(args) -> int:
    """Run ``onnxviz explain`` on Ray; prints one summary line (or its JSON with ``--json``)."""
    from ..distributed import require_ray

    require_ray()
    methods = parse_methods(args.methods)
    given = options.given_options(args)
    kwargs = {m: method_kwargs(m, given, strict=len(methods) == 1) for m in methods}
    render = files.render_of(args)
    target = parse_target(args.target)
    if args.workers is not None and args.workers < 1:
        raise OptionError(f"--workers must be >= 1, got {args.workers}")
    if getattr(args, "box", None) or getattr(args, "mask", None):
        raise OptionError("--box and --mask name one region of one image: explain it with the "
                          "local engine (with --engine ray every detection or region of each "
                          "image is a row)")
    nms = nms_of(args)  # the driver refuses them for a model that is not a detector
    if args.strict:
        raise OptionError("--strict is an option of the local engine: with --engine ray an image "
                          "or method that fails is a row of the errors table, and the run goes on")
    memory = None
    if args.memory:
        from .. import limits

        memory = limits.parse_bytes(args.memory, "--memory")
        limits.set_memory_budget(memory)  # the driver checks the model and options with it too
    if args.npy and args.no_png:
        raise OptionError("--npy writes each heatmap beside its PNGs, and --no-png writes none: "
                          "with --no-png each heatmap is in the Parquet column 'heatmap'")
    from ..distributed.job import explain_dataset

    render = None if args.no_png else render
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *a, **k: warn(str(message))
        summary = explain_dataset(
            args.model, args.images, out=args.out, methods=args.methods, options=kwargs,
            target=target, preprocess=args.preprocess,
            labels=args.labels, input=args.input_name, output=args.output_name,
            gradients=args.gradients, model_batch_size=args.batch_size, threads=args.threads,
            address=args.address, workers=args.workers, render=render,
            retry_errors=args.retry_errors, progress=not args.quiet, memory=memory,
            verbose=args.verbose, task=args.task, layout=args.layout, nms=nms)
    if args.json:
        json.dump(summary.to_dict(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(summary.line())
    return 0
