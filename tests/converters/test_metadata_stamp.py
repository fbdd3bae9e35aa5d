"""converters.metadata stamps labels/preprocessing into files made elsewhere (here: a MATLAB export)."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

import onnxviz as ov
from onnxviz.convert import ConverterError, preprocess_spec
from onnxviz.convert.metadata import main, stamp

DIGITS = [f"digit {i}" for i in range(10)]


def test_stamp_a_matlab_export(fixtures_dir, tmp_path):
    src = fixtures_dir / "matlab_mnist_tansig.onnx"
    path = tmp_path / "mnist.onnx"
    shutil.copy(src, path)
    (tmp_path / "mnist.labels.txt").write_text("\n".join(DIGITS) + "\n")
    assert main([str(path), "--labels", str(tmp_path / "mnist.labels.txt")]) == 0
    before, after = onnx.load(src), onnx.load(path)
    assert before.graph == after.graph  # only metadata_props changed
    m = ov.load(path)
    assert m.labels == DIGITS
    assert m.preprocessing.name == "raw"  # MATLAB normalizes inside the graph
    x = m.preprocess(np.full((28, 28, 3), 128, np.uint8))
    np.testing.assert_allclose(m.forward(x), ov.load(src).forward(x), atol=0)


def test_stamp_errors_and_spec_validation(tmp_path):
    with pytest.raises(ConverterError, match="no such ONNX file"):
        stamp(tmp_path / "missing.onnx", labels=DIGITS)
    assert main([str(tmp_path / "missing.onnx")]) == 2
    with pytest.raises(ConverterError, match="unknown preprocessing"):
        preprocess_spec("imagenett")
    with pytest.raises(ConverterError, match="std must not contain zeros"):
        preprocess_spec({"mean": 0, "std": [1, 0, 1]})
    assert preprocess_spec('{"mean": 0.5, "std": 0.25, "scale": 0.00392}') == {
        "mean": [0.5] * 3, "std": [0.25] * 3, "scale": 0.00392, "channel_order": "RGB"}
