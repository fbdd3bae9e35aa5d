"""``onnxviz convert CONVERTER ...``: models from PyTorch and Keras, metadata, int8/float16 forms.

One subcommand per module of :mod:`onnxviz.convert` (:data:`onnxviz.convert.CONVERTERS`); each
module supplies ``HELP``, ``add_arguments(parser)`` and ``run(args)``. Their frameworks are
optional extras, imported only when a model is converted: ``--help`` works without them, and a
conversion without its framework prints the ``pip install`` command and exits 2.
"""

from __future__ import annotations

import argparse
import importlib

EXAMPLES = """examples:
  onnxviz convert pytorch mynets.py:build -o net.onnx --input-size 224 224 --labels classes.txt
  onnxviz convert keras model.keras -o model.onnx --preprocess tf
  onnxviz convert metadata matlab_net.onnx --labels labels.txt --preprocess raw
  onnxviz convert quantize net.onnx -o net.qdq.onnx --form qdq --images skimage:chelsea

frameworks (optional extras): pip install 'onnxviz[pytorch]', 'onnxviz[keras]', 'onnxviz[quantize]'
"""


def register(subparsers) -> None:
    from ..convert import CONVERTERS

    p = subparsers.add_parser(
        "convert", help="convert PyTorch/Keras models to ONNX, stamp metadata, quantize",
        description="Write ONNX files that onnxviz reads best: dynamic batch, readable layer\n"
                    "names, preprocessing and labels in the file's metadata.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    sub = p.add_subparsers(dest="converter", metavar="CONVERTER")
    for name in CONVERTERS:
        mod = importlib.import_module(f"onnxviz.convert.{name}")
        q = sub.add_parser(name, help=mod.HELP, description=mod.__doc__.split("\n\n")[0],
                           epilog=_examples(mod.__doc__),
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           allow_abbrev=False)
        mod.add_arguments(q)
        q.add_argument("--debug", dest="sub_debug", action="store_true",
                       help="show the full traceback on errors")
        q.set_defaults(func=mod.run)
    p.set_defaults(func=lambda args: _usage(p))


def _examples(doc: str) -> str:
    """The ``onnxviz convert`` command lines of a converter's docstring, as a help epilog."""
    lines = [line.strip() for line in doc.splitlines() if line.strip().startswith("onnxviz convert")
             or line.startswith("        ") and "--" in line]
    return "examples:\n" + "\n".join("  " + line for line in lines)


def _usage(parser: argparse.ArgumentParser) -> int:
    """``onnxviz convert`` alone: the list of converters, exit 2."""
    import sys

    parser.print_help(sys.stderr)
    return 2
