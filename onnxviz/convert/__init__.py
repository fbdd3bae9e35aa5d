"""Converters from deep-learning frameworks to ONNX files that onnxviz reads best.

Each is a subcommand of ``onnxviz convert`` and a module here; a module imports its framework
only when it converts, so ``import onnxviz`` never needs torch or Keras, and a missing framework
is an error naming the extra to install. Each writes the onnxviz metadata (``onnxviz.preprocess``,
``onnxviz.labels``) described in ``docs/internals.md``.

* :mod:`onnxviz.convert.pytorch` — ``onnxviz convert pytorch pkg.mod:factory -o model.onnx``
  (``pip install 'onnxviz[pytorch]'``)
* :mod:`onnxviz.convert.keras` — ``onnxviz convert keras model.keras -o model.onnx``
  (``pip install 'onnxviz[keras]'``)
* :mod:`onnxviz.convert.metadata` — ``onnxviz convert metadata model.onnx --labels labels.txt``
* :mod:`onnxviz.convert.quantize` — ``onnxviz convert quantize model.onnx -o q.onnx --form qdq``
  (float16 forms: ``pip install 'onnxviz[quantize]'``)
* ``onnxviz/convert/matlab/onnxviz_export.m`` — run inside MATLAB.
"""

from ._metadata import ConverterError, preprocess_spec, read_labels, read_metadata, write_metadata

#: The ``onnxviz convert`` subcommands, each a module of this package.
CONVERTERS = ("pytorch", "keras", "metadata", "quantize")

__all__ = ["CONVERTERS", "ConverterError", "preprocess_spec", "read_labels", "read_metadata",
           "write_metadata"]
