"""Keras 3 -> ONNX for onnxviz, through Keras's own ``model.export(path, format="onnx")``.

Usage::

    onnxviz convert keras model.keras -o model.onnx --preprocess tf --labels classes.txt
    onnxviz convert keras vgg16.h5 -o vgg16.onnx --preprocess caffe

The input keeps the Keras layout (NHWC, ``channels_last``) and a dynamic batch axis; tf2onnx names
nodes after the Keras layers (``functional/conv2d/convolution``), which onnxviz shows as layer
names. A trailing ``Softmax`` activation is kept: onnxviz explains the logits before it.

Three things that ``model.export`` alone gets wrong are fixed here (``keras.applications`` hit all
three: EfficientNet, EfficientNetV2 and ConvNeXt):

- Grouped convolutions (``Conv2D(groups=...)``, ConvNeXt's depthwise convolutions) are traced as
  plain ``tf.nn.convolution``. Keras's TensorFlow backend wraps them in a
  ``tf.function(jit_compile=True)`` because TensorFlow's CPU kernel cannot run them; freezing does
  not inline XLA functions, so tf2onnx would leave a ``StatefulPartitionedCall`` in the graph.
  Only the graph is needed here, and tf2onnx turns TensorFlow's grouped ``Conv2D`` into an ONNX
  ``Conv`` with ``group``.
- TensorFlow's exact GELU computes ``erfc``, which tf2onnx does not convert; it becomes
  ``1 - Erf(x)``.
- Tensors that a layer holds instead of a variable (``Normalization``'s mean and variance) are
  captured by the traced function, and tf2onnx makes every capture a graph input: the value is lost
  where a node reads it (ConvNeXt's mean) and a dangling input is left where TensorFlow folded it
  away (EfficientNet). They are traced as NumPy constants instead, so they become initializers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import onnx  # noqa: E402

from ._metadata import ConverterError, cli_main, require, save, write_metadata  # noqa: E402

HELP = "a Keras 3 model (.keras or .h5, TensorFlow backend) to ONNX"
#: What ``model.export(format="onnx")`` needs; installed by ``pip install 'onnxviz[keras]'``.
FRAMEWORK = ("keras", "tensorflow", "tf2onnx")


def convert(
    model,
    path: str | Path,
    *,
    preprocess: str | dict | None = None,
    labels: Sequence[str] | str | Path | None = None,
    opset: int | None = 17,
    task: str | None = None,
    layout: str | None = None,
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
        task: ``classify``, ``detect`` or ``segment``, written to the metadata so that
            ``onnxviz.load`` needs no ``task=`` (None: let it tell from the outputs).
        layout: a detector's output layout (``yolov8``, ``yolov5``), written likewise.

    Returns:
        The saved model.
    """
    require(FRAMEWORK, "Keras with TensorFlow and tf2onnx", "keras")
    model = load_model(model) if isinstance(model, (str, Path)) else model
    _ensure_called(model)
    _register_erfc()
    with (tempfile.TemporaryDirectory() as tmp, _grouped_convs_without_xla(model),
          _tensors_as_constants(model)):
        out = Path(tmp) / "model.onnx"
        model.export(str(out), format="onnx", verbose=False, opset_version=opset)
        proto = onnx.load(str(out))
    _refuse_tf_ops(proto)
    write_metadata(proto, preprocess=preprocess, labels=labels, task=task, layout=layout)
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


@contextlib.contextmanager
def _grouped_convs_without_xla(model):
    """While exporting, trace every grouped convolution of ``model`` as one ``tf.nn.convolution``.

    Keras's TensorFlow backend runs a convolution whose kernel has fewer input channels than the
    input (``groups > 1``) inside ``tf.function(jit_compile=True)``; the exported graph would keep
    that XLA function as a ``StatefulPartitionedCall``. The override is an instance attribute,
    removed afterwards.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        yield
        return
    patched = []
    for layer in _all_layers(model):
        if (getattr(layer, "groups", 1) > 1 and getattr(layer, "padding", None) in ("valid", "same")
                and callable(getattr(layer, "convolution_op", None))):
            layer.convolution_op = _plain_convolution(layer)
            patched.append(layer)
    try:
        yield
    finally:
        for layer in patched:
            del layer.convolution_op


@contextlib.contextmanager
def _tensors_as_constants(model):
    """While exporting, replace the eager tensors that layers hold as attributes by NumPy arrays.

    A ``tf.function`` captures an eager tensor as an input, which tf2onnx then exports as a graph
    input without its value; a NumPy array is traced as a constant. Variables are left alone (they
    are frozen into initializers), and the original tensors are put back afterwards.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    replaced = []
    for layer in _all_layers(model):
        for name, value in list(vars(layer).items()):
            if isinstance(value, tf.Tensor) and hasattr(value, "numpy"):
                replaced.append((layer, name, value))
                object.__setattr__(layer, name, value.numpy())
    try:
        yield
    finally:
        for layer, name, value in replaced:
            object.__setattr__(layer, name, value)


def _all_layers(model):
    """``model`` and every layer nested in it (Keras 3's own walk over sub-layers)."""
    return model._flatten_layers(include_self=True, recursive=True)


def _plain_convolution(layer):
    """``layer``'s convolution as the one TensorFlow op it is (what Keras's ``_conv`` runs)."""
    import tensorflow as tf

    spatial = "DHW"[3 - layer.rank:]
    data_format = f"N{spatial}C" if layer.data_format == "channels_last" else f"NC{spatial}"

    def convolution_op(inputs, kernel):
        return tf.nn.convolution(inputs, kernel, list(layer.strides), layer.padding.upper(),
                                 data_format=data_format, dilations=list(layer.dilation_rate))

    return convolution_op


def _register_erfc() -> None:
    """Teach tf2onnx TensorFlow's ``Erfc`` (exact GELU) as ``1 - Erf(x)`` (ONNX ``Erf``, opset 9)."""
    import numpy as np
    from tf2onnx import handler, utils

    if any("Erfc" in ops for ops in handler.tf_op.get_opsets().get("", [])):
        return  # registered before (or tf2onnx learnt it)

    @handler.tf_op("Erfc")
    class _Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            node.type = "Erf"
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}/one"), np.array(1, dtype))
            erf = node.output[0]
            sub = ctx.insert_new_node_on_output("Sub", erf, inputs=[one.output[0], erf],
                                                name=utils.make_name(f"{node.name}/erfc"))
            ctx.copy_shape(erf, sub.output[0])


def _refuse_tf_ops(proto: onnx.ModelProto) -> None:
    """tf2onnx keeps TensorFlow ops it cannot convert; name them instead of writing a broken file."""
    left = sorted({n.op_type for n in proto.graph.node
                   if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if left:
        raise ConverterError(f"tf2onnx could not convert the TensorFlow ops {', '.join(left)}; "
                             "the exported graph would not run in ONNX Runtime")


def load_model(path: str | Path):
    """Loads a ``.keras`` or ``.h5`` file with Keras 3 (compile state is not needed)."""
    path = Path(path)
    if not path.is_file():
        raise ConverterError(f"no such Keras model file: {path}")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ConverterError(f"{path.name}: expected a .keras or .h5 file (SavedModel folders: load and pass the object)")
    require(FRAMEWORK, "Keras with TensorFlow and tf2onnx", "keras")
    import keras

    return keras.models.load_model(path, compile=False)


def add_arguments(parser) -> None:
    """The options of ``onnxviz convert keras``."""
    parser.add_argument("model", help=".keras or .h5 file")
    parser.add_argument("-o", "--output", required=True, help="output .onnx path")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--preprocess", help="preset name (tf, caffe, imagenet, unit, raw) or JSON; "
                        "omitted: onnxviz guesses")
    parser.add_argument("--labels", help="text file, one class name per line (or a JSON list)")


def run(args) -> int:
    """Runs ``onnxviz convert keras`` on parsed arguments; prints the written path."""
    convert(args.model, args.output, preprocess=args.preprocess, labels=args.labels,
            opset=args.opset)
    print(f"wrote {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m onnxviz.convert.keras``, the same as ``onnxviz convert keras``."""
    return cli_main("keras", argv)


if __name__ == "__main__":
    sys.exit(main())
