"""Keras 3 applications, exported to ONNX, explained like Keras computes them.

Each application is built with random weights (``weights=None``, 10 classes, the default
``include_preprocessing``) at a small input size and exported once per session with
``onnxviz.convert.keras`` (Keras's ``model.export`` plus the fixes it needs), under pytest's temporary
folder. EfficientNetB0 and ConvNeXtTiny are the two that ``model.export`` alone gets wrong
(Normalization constants become graph inputs; grouped convolutions stay a TensorFlow
``StatefulPartitionedCall``); small inline models check those two causes one at a time, through
``model.export`` and through the converter.

For each application:
- ``ov.load`` works and ``forward`` gives the Keras logits (a float64 twin of the model, built with
  the same weights and ``classifier_activation=None``) within 1e-4 relative, and its softmax the
  Keras model's own output;
- the input gradient and the gradient at one mid-depth layer's output equal ``tf.GradientTape`` on
  the float64 twin at batch 2, within 1e-4 x max|grad|;
- that layer is listed by onnxviz under its Keras name (also where Keras named layers
  automatically: ``re_lu_3`` is exported under the scope ``re_lu_3_2``);
- ``ov.explain`` runs Grad-CAM and saliency.

Also covered by the small models: NASNet's ``Cropping2D``, a Slice along the symbolic batch axis.
"""

from __future__ import annotations

import functools
import gc
import os
import re
from dataclasses import dataclass

import numpy as np
import onnx
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import onnxviz as ov  # noqa: E402
from onnxviz.convert.keras import convert  # noqa: E402

TOL = 1e-4
CLASSES = 10
#: (keras.applications name, input size)
APPS = [
    ("EfficientNetB0", 64),
    ("ConvNeXtTiny", 32),
    ("MobileNetV3Small", 64),
    ("DenseNet121", 64),
    ("ResNet50", 64),
]


@dataclass
class App:
    name: str
    size: int
    model: object  # the float32 Keras model that was exported
    twin: object  # float64, same weights, logits out
    path: object
    m: object  # the loaded onnxviz Model
    tap: int  # index of the mid-depth layer in model.layers (and twin.layers)
    layer: object  # the onnxviz Layer of its output

    @functools.cached_property
    def reference(self):
        """(input gradient, gradient at layer ``tap``) from tf.GradientTape on the twin."""
        return _tape(self.twin, _pixels(self.size), self.tap)


def _build(name, size, dtype="float32", **kwargs):
    keras.utils.set_random_seed(0)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                                 classes=CLASSES, **kwargs)
    finally:
        keras.config.set_dtype_policy(policy)


def _tap(model, m):
    """A mid-depth Keras layer (its index in ``model.layers``) and the onnxviz layer of its output.

    Keras 3's export puts layer ``X`` under the name scope ``X_1`` (``model_1/X_1/convolution``),
    and the onnxviz layer of a scope whose name has no ``/OpType`` part is the scope's last node.
    Keras names that end in ``_<number>`` are left out: scope ``conv_1`` may be layer ``conv``'s.
    """
    outputs = {}
    for layer in m.layers():
        parts = layer.tensor.split("/")
        if layer.is_4d and len(parts) > 2 and "/" not in layer.name:
            outputs[parts[1]] = layer
    hits = [(i, outputs[f"{k.name}_1"]) for i, k in enumerate(model.layers)
            if not re.search(r"_\d+$", k.name) and f"{k.name}_1" in outputs]
    assert hits, "no Keras layer found among onnxviz's layers"
    return hits[len(hits) // 2]


@pytest.fixture(scope="module", params=APPS, ids=[a[0] for a in APPS])
def app(request, tmp_path_factory):
    name, size = request.param
    model = _build(name, size)
    model(np.zeros((1, size, size, 3), np.float32))  # export needs a called model
    twin = _build(name, size, "float64", classifier_activation=None)
    twin.set_weights(model.get_weights())
    path = tmp_path_factory.mktemp("keras_apps") / f"{name}.onnx"
    convert(model, path, preprocess="raw")
    m = ov.load(path)
    yield App(name, size, model, twin, path, m, *_tap(model, m))
    del model, twin, m
    keras.utils.clear_session(free_memory=True)  # one application's graphs in memory at a time
    gc.collect()


def _pixels(size, n=2):
    return np.random.default_rng(1).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def _seed():
    seed = np.zeros((2, CLASSES))
    seed[0, 1], seed[1, 7] = 1.0, 1.0
    return seed


def _tape(twin, x, tap):
    """float64 gradients of sum(seed * logits) wrt the input and the output of layer ``tap``."""
    layer, seen = twin.layers[tap], {}
    call = layer.call

    def watched(*args, **kwargs):
        seen["out"] = call(*args, **kwargs)
        return seen["out"]

    layer.call = watched
    try:
        xt = tf.constant(x.astype(np.float64))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            total = tf.reduce_sum(twin(xt, training=False) * _seed())
        gx, gt = tape.gradient(total, [xt, seen["out"]])
    finally:
        del layer.call
    return gx.numpy(), gt.numpy()


def _close(got, want, what):
    scale = np.abs(want).max()
    assert scale > 0, f"{what}: the reference gradient is zero"
    err = np.abs(got - want).max()
    assert err <= TOL * scale, f"{what}: max|diff| {err:.3g} vs max|grad| {scale:.3g}"


@pytest.mark.slow
def test_loads_and_predicts_like_keras(app):
    m = app.m
    assert m.input.layout == "NHWC" and m.input.size == (app.size, app.size)
    assert m.num_classes == CLASSES and m.score_output != m.prob_output
    x = _pixels(app.size)
    logits = app.twin(x.astype(np.float64), training=False).numpy()
    got = m.forward(x)
    assert np.abs(got - logits).max() <= TOL * max(np.abs(logits).max(), 1.0)
    probs = app.model(x, training=False).numpy()
    np.testing.assert_allclose(m.probabilities(got), probs, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_input_gradient_matches_gradient_tape(app):
    x = _pixels(app.size)
    _close(app.m.grad(x, [1, 7]), app.reference[0], "input gradient")


@pytest.mark.slow
def test_layer_gradient_matches_gradient_tape(app):
    x = _pixels(app.size)
    name = app.model.layers[app.tap].name
    want = app.reference[1]
    got = app.m.grad(x, [1, 7], wrt=app.layer.tensor)
    if got.shape != want.shape:  # tf2onnx keeps convolution activations NCHW
        assert got.shape == want.transpose(0, 3, 1, 2).shape, (got.shape, want.shape)
        want = want.transpose(0, 3, 1, 2)
    _close(got, want, f"gradient at {name}")


@pytest.mark.slow
def test_keras_layer_names_are_layer_names(app):
    # Keras 3 exports layer zero_padding2d_1 under scope zero_padding2d_1_2 (MobileNetV3Small,
    # DenseNet121): the scope suffix is any _N, not always _1
    assert app.layer.name == app.model.layers[app.tap].name


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_explain_runs(app, method):
    m = app.m
    img = np.random.default_rng(2).integers(0, 256, (app.size, app.size, 3), dtype=np.uint8)
    e = ov.explain(m, img, method=method, target=3)
    assert e.heatmap.shape == (app.size, app.size)
    assert np.isfinite(e.heatmap).all()


# --- the two causes, one small model each -------------------------------------------------------

L = keras.layers


def _normalization_stem():
    """EfficientNet's stem: Rescaling then an un-adapted Normalization (mean 0, variance 1)."""
    inp = keras.Input((16, 16, 3))
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Normalization(axis=-1)(x)
    x = L.Conv2D(8, 3, padding="same", activation="swish")(x)
    x = L.GlobalAveragePooling2D()(x)
    return inp, L.Dense(4)(x)


def _convnext_parts():
    """ConvNeXt's pieces: Normalization with given statistics, a grouped (depthwise) Conv2D,
    exact GELU; plus NASNet's Cropping2D (a Slice along the symbolic batch axis)."""
    inp = keras.Input((16, 16, 3))
    x = L.Normalization(mean=[120.0, 110.0, 100.0], variance=[3000.0, 3200.0, 3500.0])(inp)
    x = L.Conv2D(8, 3, padding="same")(x)
    x = L.Conv2D(8, 3, padding="same", groups=8)(x)
    x = L.Activation("gelu")(x)
    x = L.Cropping2D(((1, 2), (2, 1)))(x)
    x = L.GlobalAveragePooling2D()(x)
    return inp, L.Dense(4)(x)


def _small(build):
    keras.utils.set_random_seed(0)
    inp, logits = build()
    model = keras.Model(inp, L.Softmax()(logits))
    model(np.zeros((1, 16, 16, 3), np.float32))
    return model, keras.Model(inp, logits)


def test_model_export_normalization_inputs_are_dropped(tmp_path):
    model, _ = _small(_normalization_stem)
    path = tmp_path / "stem.onnx"
    model.export(str(path), format="onnx", verbose=False)
    assert len(onnx.load(str(path)).graph.input) == 3  # image + Normalization's mean, variance
    m = ov.load(path, preprocess="raw")
    assert any("no node reads" in note for note in m.notes)
    x = _pixels(16)
    np.testing.assert_allclose(m.probabilities(m.forward(x)), model(x).numpy(), atol=1e-5)


def test_model_export_grouped_conv_is_refused_with_a_way_out(tmp_path):
    model, _ = _small(_convnext_parts)
    path = tmp_path / "parts.onnx"
    model.export(str(path), format="onnx", verbose=False)
    with pytest.raises(ov.ModelError, match=r"StatefulPartitionedCall.*onnxviz convert keras"):
        ov.load(path)


@pytest.mark.parametrize("build", [_normalization_stem, _convnext_parts], ids=["stem", "convnext"])
def test_converter_keeps_constants_and_converts_grouped_conv(build, tmp_path):
    model, logit_model = _small(build)
    path = tmp_path / "small.onnx"
    proto = convert(model, path, preprocess="raw")
    assert len(proto.graph.input) == 1  # the constants stay in the file
    assert all(onnx.defs.has(n.op_type) for n in proto.graph.node)
    m = ov.load(path)
    x = _pixels(16)
    np.testing.assert_allclose(m.forward(x), logit_model(x).numpy(), atol=1e-4, rtol=0)
    seed = np.zeros((2, 4), np.float32)
    seed[0, 1], seed[1, 3] = 1.0, 1.0
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        total = tf.reduce_sum(logit_model(xt, training=False) * seed)
    _close(m.grad(x, [1, 3]), tape.gradient(total, xt).numpy(), "input gradient")
