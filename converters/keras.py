"""Keras 3 -> ONNX for onnxviz, through Keras's own ``model.export(path, format="onnx")``.

Usage::

    python -m converters.keras model.keras -o model.onnx --preprocess tf --labels classes.txt

The input keeps the Keras layout (NHWC, ``channels_last``) and a dynamic batch axis; tf2onnx names
nodes after the Keras layers (``functional/conv2d/convolution``), which onnxviz shows as layer
names. A trailing ``Softmax`` activation is kept: onnxviz explains the logits before it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import onnx  # noqa: E402

from ._metadata import ConverterError, run_main, save, write_metadata  # noqa: E402


def convert(
    model,
    path: str | Path,
    *,
    preprocess: str | dict | None = None,
    labels: Sequence[str] | str | Path | None = None,
    opset: int | None = 17,
) -> onnx.ModelProto:
    """Exports a Keras model (object or ``.keras``/``.h5`` path) to ``path`` with onnxviz metadata.

    Args:
        model: a ``keras.Model`` or the path of a saved one.
        path: where to write the ``.onnx`` file.
        preprocess: what the model expects from RGB pixels in [0, 255]: a preset name (``tf`` for
            ``keras.applications`` models in [-1, 1], ``caffe`` for VGG16/ResNet50, ``imagenet``,
            ``unit``, ``raw``), a dict/JSON with ``mean``/``std``/``scale``/``channel_order``, or
            None to let onnxviz guess.
        labels: class names (list, or a text file with one per line), or None.
        opset: ONNX opset (None: the exporter's default).

    Returns:
        The saved model.
    """
    model = load_model(model) if isinstance(model, (str, Path)) else model
    _ensure_called(model)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        model.export(str(out), format="onnx", verbose=False, opset_version=opset)
        proto = onnx.load(str(out))
    write_metadata(proto, preprocess=preprocess, labels=labels)
    onnx.checker.check_model(proto)
    save(proto, path)
    return proto


def _ensure_called(model) -> None:
    """Keras exports only models that have run once; runs a functional model on zeros if needed."""
    if getattr(model, "_called", True):
        return
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1 or any(d is None for d in inputs[0].shape[1:]):
        raise ConverterError("the Keras model has never been called and its input shape is unknown: "
                             "call it once on an example batch before converting")
    import numpy as np

    model(np.zeros((1, *inputs[0].shape[1:]), dtype="float32"))


def load_model(path: str | Path):
    """Loads a ``.keras`` or ``.h5`` file with Keras 3 (compile state is not needed)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ConverterError(f"no such Keras model file: {path}")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ConverterError(f"{path.name}: expected a .keras or .h5 file (SavedModel folders: load and pass the object)")
    return keras.models.load_model(path, compile=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converters.keras", description=__doc__.split("\n")[0])
    parser.add_argument("model", help=".keras or .h5 file")
    parser.add_argument("-o", "--output", required=True, help="output .onnx path")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--preprocess", help="preset name or JSON (see docs); omitted: onnxviz guesses")
    parser.add_argument("--labels", help="text file, one class name per line (or a JSON list)")
    args = parser.parse_args(argv)
    return run_main(
        lambda: convert(args.model, args.output, preprocess=args.preprocess, labels=args.labels,
                        opset=args.opset),
        args.output,
    )


if __name__ == "__main__":
    sys.exit(main())
