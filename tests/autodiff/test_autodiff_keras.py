"""Gradients of Keras 3 models exported with ``model.export(format="onnx")`` against tf.GradientTape.

The exported graphs take NHWC input and transpose to NCHW, have Dense layers as MatMul+Add,
BatchNormalization folded into the convolutions, and a trailing Softmax; the gradient of the
pre-softmax logits (the Softmax node's input) must match tf.GradientTape on the Keras logits:
max |diff| <= 1e-4 * max |grad|.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from _autodiff_helpers import run_grads  # noqa: E402

TOL = 1e-4


def _randomize_bn(model):
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.uniform(-0.2, 0.2, b.shape),
                               rng.uniform(-0.2, 0.2, m.shape), rng.uniform(0.5, 1.5, v.shape)])


def cnn():
    L = keras.layers
    inp = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu")(x)
    logits = L.Dense(10)(x)
    return inp, logits


def mobile():
    L = keras.layers
    inp = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU(max_value=6.0)(x)
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU(max_value=6.0)(y)
    y = L.Conv2D(8, 1, use_bias=False)(y)
    y = L.BatchNormalization()(y)
    x = L.Add()([x, y])
    x = L.AveragePooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.3)(x)
    logits = L.Dense(10)(x)
    return inp, logits


@pytest.mark.parametrize("build", [cnn, mobile], ids=["cnn", "mobile"])
def test_keras_export_matches_gradient_tape(build, tmp_path):
    keras.utils.set_random_seed(0)
    inp, logits = build()
    probs = keras.layers.Softmax()(logits)
    model = keras.Model(inp, probs)
    _randomize_bn(model)
    logit_model = keras.Model(inp, logits)
    path = tmp_path / "model.onnx"
    model(np.zeros((1, 32, 32, 3), np.float32))  # export needs a built (called) model
    model.export(str(path), format="onnx", verbose=False)
    proto = onnx.load(str(path))
    softmax = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert len(softmax) == 1
    score = softmax[0].input[0]

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    seed = np.zeros((2, 10), np.float32)
    seed[0, 2], seed[1, 8] = 1.0, 1.0
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = logit_model(xt, training=False)
        total = tf.reduce_sum(out * seed)
    ref = tape.gradient(total, xt).numpy()
    name = proto.graph.input[0].name
    grads, _ = run_grads(proto, score, [name], {name: x}, seed)
    got = grads[name]
    assert got.shape == ref.shape
    err = np.abs(got - ref).max()
    assert err <= TOL * np.abs(ref).max(), f"max|diff| {err:.3g} vs max|grad| {np.abs(ref).max():.3g}"
