"""Converters from deep-learning frameworks to ONNX files that onnxviz reads best.

These modules import their framework (torch, keras) and are therefore never imported by
``onnxviz`` itself. Each writes the onnxviz metadata (``onnxviz.preprocess``, ``onnxviz.labels``)
described in ``docs/internals.md``.

* :mod:`onnxviz.convert.pytorch` — ``python -m onnxviz.convert.pytorch pkg.mod:factory -o model.onnx``
* :mod:`onnxviz.convert.keras` — ``python -m onnxviz.convert.keras model.keras -o model.onnx``
* ``onnxviz/convert/matlab/onnxviz_export.m`` — run inside MATLAB.
"""

from ._metadata import ConverterError, preprocess_spec, read_labels, read_metadata, write_metadata

__all__ = ["ConverterError", "preprocess_spec", "read_labels", "read_metadata", "write_metadata"]
