"""converters.keras: an exported Keras model gives Keras's pre-softmax scores through onnxviz."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

import onnxviz as ov  # noqa: E402
from onnxviz.convert import read_metadata  # noqa: E402
from onnxviz.convert.keras import convert, main  # noqa: E402

LABELS = ["red", "green", "blue", "grey"]
TOL = 1e-4


@pytest.fixture(scope="module")
def keras_model():
    """NHWC Conv-BN-ReLU-pool-Conv-GAP-Dense(softmax), BN statistics random (not identity)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn1")
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma * 1.5, beta + 0.1, rng.uniform(-0.3, 0.3, 6), rng.uniform(0.5, 2.0, 6)])
    return model


def keras_logits(model, x: np.ndarray) -> np.ndarray:
    """The Dense layer's input, times its kernel, plus its bias: the scores before softmax."""
    features = keras.Model(model.inputs, model.get_layer("gap").output).predict(x, verbose=0)
    kernel, bias = model.get_layer("predictions").get_weights()
    return features.astype(np.float64) @ kernel + bias


@pytest.fixture(scope="module")
def exported(keras_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "m.onnx"
    convert(keras_model, path, preprocess="tf", labels=LABELS)
    return path


def test_scores_before_softmax_match_keras(keras_model, exported):
    m = ov.load(exported)
    assert m.input.layout == "NHWC" and m.input.size == (24, 24)
    assert m.prob_output is not None and m.score_output != m.prob_output
    images = np.random.default_rng(1).integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    x = m.preprocess(list(images))
    np.testing.assert_allclose(x, images / 127.5 - 1, atol=1e-6)  # the "tf" preset, NHWC kept
    np.testing.assert_allclose(m.forward(x), keras_logits(keras_model, x), atol=TOL, rtol=0)
    probs = keras_model.predict(x, verbose=0)
    np.testing.assert_allclose(m.probabilities(m.forward(x)), probs, atol=1e-5, rtol=0)
    for i in range(3):  # dynamic batch: single images give the same rows
        np.testing.assert_allclose(m.forward(x[i : i + 1]), m.forward(x)[i : i + 1], atol=1e-6)


def test_metadata_and_layer_names(exported):
    proto = onnx.load(exported)
    assert read_metadata(proto) == {"preprocess": {"preset": "tf"}, "labels": LABELS}
    m = ov.load(exported)
    assert m.labels == LABELS and m.preprocessing.name == "tf" and m.preprocessing.source == "metadata"
    assert any("conv2" in n.name for n in proto.graph.node if n.op_type == "Conv")


def test_cli_on_a_keras_file(keras_model, tmp_path, capsys):
    keras_model.save(tmp_path / "m.keras")
    (tmp_path / "labels.txt").write_text("\n".join(LABELS))
    assert main([str(tmp_path / "m.keras"), "-o", str(tmp_path / "cli.onnx"), "--preprocess", "unit",
                 "--labels", str(tmp_path / "labels.txt")]) == 0
    m = ov.load(tmp_path / "cli.onnx")
    assert m.labels == LABELS and m.preprocessing.name == "unit"
    x = np.random.default_rng(2).uniform(0, 1, (2, 24, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(m.forward(x), keras_logits(keras_model, x), atol=TOL, rtol=0)
    assert main([str(tmp_path / "missing.keras"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "no such Keras model file" in capsys.readouterr().err
