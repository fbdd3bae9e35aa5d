"""Stamp onnxviz metadata into an existing ONNX file (MATLAB exports, files from elsewhere).

Usage::

    onnxviz convert metadata mynet.onnx --labels mynet.labels.txt --preprocess raw
    onnxviz convert metadata other.onnx --preprocess imagenet -o other.stamped.onnx

Without ``-o`` the file is rewritten in place. Only ``metadata_props`` change; the graph is untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import onnx

from ._metadata import ConverterError, cli_main, read_metadata, save, write_metadata

HELP = "stamp labels and preprocessing into an ONNX file made elsewhere (MATLAB, any exporter)"


def stamp(path: str | Path, output: str | Path | None = None, *, preprocess=None, labels=None) -> dict:
    """Adds ``onnxviz.preprocess`` / ``onnxviz.labels`` to the model at ``path``.

    Args:
        path: the ONNX file.
        output: where to write (default: ``path`` itself).
        preprocess: preset name, JSON or dict (see ``docs/internals.md``); None leaves it as is.
        labels: list of names or a text file with one per line; None leaves them as is.

    Returns:
        The metadata now in the file (``{"preprocess": ..., "labels": ...}``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConverterError(f"no such ONNX file: {path}")
    model = onnx.load(str(path))
    write_metadata(model, preprocess=preprocess, labels=labels)
    save(model, output or path)
    return read_metadata(model)


def add_arguments(parser) -> None:
    """The options of ``onnxviz convert metadata``."""
    parser.add_argument("model", help="ONNX file")
    parser.add_argument("-o", "--output", help="output path (default: rewrite in place)")
    parser.add_argument("--preprocess", help="preset name (imagenet, tf, caffe, unit, raw) or JSON")
    parser.add_argument("--labels", help="text file, one class name per line (or a JSON list)")


def run(args) -> int:
    """Runs ``onnxviz convert metadata`` on parsed arguments; prints what the file now holds."""
    try:
        meta = stamp(args.model, args.output, preprocess=args.preprocess, labels=args.labels)
    except OSError as exc:
        raise ConverterError(str(exc)) from exc
    labels = meta["labels"]
    print(f"preprocess: {meta['preprocess']}; labels: {len(labels) if labels else 'none'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m onnxviz.convert.metadata``, the same as ``onnxviz convert metadata``."""
    return cli_main("metadata", argv)


if __name__ == "__main__":
    sys.exit(main())
