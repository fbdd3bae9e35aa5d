"""Helpers shared by the subcommands: model options, loading, printing JSON, warnings."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from ..results import dumps

IMAGES_HELP = "image files, folders of images, or skimage:NAME"


def add_common(parser: argparse.ArgumentParser, *,
               json_help: str = "print machine-readable JSON") -> None:
    """``--json`` and ``--debug`` (also accepted after the subcommand)."""
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--debug", dest="sub_debug", action="store_true",
                        help="show the full traceback on errors")


def model_command(subparsers, name: str, *, help: str, description: str,
                  images: str | None = IMAGES_HELP) -> argparse.ArgumentParser:
    """A subcommand taking MODEL (with :func:`add_model_args`) and, unless ``images`` is None,
    ``IMAGE_OR_DIR...`` with that help text."""
    parser = subparsers.add_parser(name, allow_abbrev=False, help=help, description=description)
    add_model_args(parser)
    if images is not None:
        add_images_arg(parser, help=images)
    return parser


def add_detection_args(parser: argparse.ArgumentParser) -> None:
    """The detector group: ``--score-threshold``, ``--iou-threshold``, ``--max-detections`` (the
    NMS that picks a detector's boxes; refused for other models when changed)."""
    g = parser.add_argument_group("detectors")
    g.add_argument("--score-threshold", type=float, default=None, metavar="S",
                   help="keep detections scoring at least S (default 0.25)")
    g.add_argument("--iou-threshold", type=float, default=None, metavar="T",
                   help="NMS: drop a box overlapping a better one of its class by more than T "
                        "(default 0.45)")
    g.add_argument("--max-detections", type=int, default=None, metavar="N",
                   help="at most N detections per image (default 300)")


def nms_of(args, model=None) -> dict:
    """The NMS options given on the command line (``{}`` when none); given for a ``model`` that
    is not a detector: refused in one line (without a model, checked where it is loaded)."""
    from ..errors import OptionError
    from ..explainers.dense import NMS_OPTIONS

    given = {k: getattr(args, k) for k in NMS_OPTIONS if getattr(args, k, None) is not None}
    if given and model is not None and model.task != "detect":
        raise OptionError("--score-threshold, --iou-threshold and --max-detections are for "
                          f"detectors; this model is a {_task_name(model.task)}")
    return given


def _task_name(task: str) -> str:
    return {"classify": "classifier", "segment": "segmenter"}.get(task, task)


def add_images_arg(parser: argparse.ArgumentParser, *, help: str = IMAGES_HELP) -> None:
    """The positional ``IMAGE_OR_DIR...`` (expanded by :func:`files.expand_images`)."""
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help=help)


def add_layer_arg(parser: argparse.ArgumentParser, *, channels_help: str) -> None:
    """The required ``--layer`` and the ``--channels`` list of a per-layer subcommand."""
    parser.add_argument("--layer", "-l", required=True, metavar="L",
                        help="layer name (see onnxviz inspect)")
    parser.add_argument("--channels", metavar="LIST", help=channels_help)


def add_function_options(parser: argparse.ArgumentParser, function, skip, title: str) -> None:
    """One flag per keyword option of ``function`` (minus ``skip``)."""
    from ..explainers.options import function_options
    from . import options

    options.add_options(parser, function_options(function, skip), lambda _: (title, None))


def function_args(args, function, skip) -> tuple[dict, list[int] | None]:
    """The keyword options given for ``function`` and the parsed ``--channels`` list."""
    from ..explainers.options import function_kwargs, parse_channels
    from . import options

    kwargs = function_kwargs(function, options.given_options(args), skip)
    return kwargs, parse_channels(args.channels)


def print_output(args, record: dict, path) -> None:
    """One written file: ``record`` as a JSON line with ``--json``, else just ``path``."""
    print(json.dumps(record) if args.json else path)


def add_model_args(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """MODEL plus the options of :func:`onnxviz.load`."""
    from ..model.precision import GRADIENT_MODES

    if positional:
        parser.add_argument("model", metavar="MODEL", help="path to an .onnx file")
    g = parser.add_argument_group("model options")
    g.add_argument("--preprocess", metavar="SPEC",
                   help="preset (imagenet, tf, caffe, unit, raw) or JSON "
                        '{"mean": [..], "std": [..], "scale": s, "channel_order": "RGB"}; '
                        "default: the model's metadata, else a guess")
    g.add_argument("--labels", metavar="FILE",
                   help="class names, one per line (or 'imagenet'); default: the model's "
                        "metadata, ImageNet for 1000 classes")
    g.add_argument("--input", dest="input_name", metavar="NAME",
                   help="the image input, for models with several inputs")
    g.add_argument("--output", dest="output_name", metavar="NAME",
                   help="the graph output to use (default: the first)")
    g.add_argument("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads")
    g.add_argument("--batch-size", type=int, metavar="N", help="images per ONNX Runtime call")
    g.add_argument("--memory", metavar="SIZE",
                   help="memory budget that sizes the batches, e.g. 4G, 512M or 30%% (default: "
                        "half the available memory, or ONNXVIZ_MEMORY_BUDGET)")
    g.add_argument("--task", choices=["auto", "classify", "detect", "segment"], default=None,
                   help="what the model does (default auto: the file's metadata, else the "
                        "output's shape)")
    from ..detection import LAYOUTS

    g.add_argument("--layout", choices=list(LAYOUTS), default=None,
                   help="a detector's output: yolov8 [N, 4+C, A], yolov5 [N, A, 5+C], or boxes "
                        "(a graph ending in NonMaxSuppression) (default: the metadata, else the "
                        "graph)")
    g.add_argument("--gradients", metavar="MODE", choices=list(GRADIENT_MODES),
                   help="int8 files: gradients by the straight-through estimator through the "
                        "quantizers (ste; ste-logit reads the quantizer of the logits as the "
                        "identity) or of the float graph on dequantized weights (surrogate); "
                        "default: ste-logit for QDQ, ste for dynamic, surrogate for QOperator "
                        "(onnxviz inspect tells)")


def load_model(args):
    """Load ``args.model`` with the model options; warnings are printed as one line each."""
    from .. import limits, load

    if getattr(args, "memory", None):
        limits.set_memory_budget(limits.parse_bytes(args.memory, "--memory"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load(args.model, preprocess=args.preprocess, labels=args.labels,
                     input=args.input_name, output=args.output_name, threads=args.threads,
                     batch_size=args.batch_size, gradients=getattr(args, "gradients", None),
                     task=getattr(args, "task", None), layout=getattr(args, "layout", None))
    for w in caught:
        warn(str(w.message))
    return model


def warn(message: str) -> None:
    print(f"onnxviz: warning: {message}", file=sys.stderr)


def print_json(obj) -> None:
    """Print ``obj`` as indented JSON (numpy values converted, NaN as null)."""
    sys.stdout.write(dumps(obj, indent=2))
    sys.stdout.write("\n")
