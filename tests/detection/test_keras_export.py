"""The scenes detector exported with the Keras exporter (issue 22: "the Keras exporter too if the
head converts"). It does: ``models/scenes_keras.py`` is the same network in Keras 3 (NHWC, the
bundled detector's weights copied in), and ``onnxviz.convert.keras`` (``model.export``, tf2onnx)
gives a graph of Conv, Relu, Softplus, Sigmoid, Slice, Reshape, Concat and Transpose nodes.

- The file is a ``yolov8`` detector from the converter's metadata, and from its output's shape
  alone when the metadata is removed.
- Its raw head equals the torch export's (the bundled ``shapes_detector.onnx``) and Keras's own
  output on the same images; ``predict`` gives the same boxes, labels and scores.
- ODAM, Grad-CAM, saliency and D-RISE explain every box without a refusal, each map equal to the
  torch export's; the CAMs are drawn at the box's own feature level, found through tf2onnx's
  NHWC -> NCHW Transposes.
- A box's saliency is ``tf.GradientTape``'s gradient of its class logit on a float64 twin.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import onnxviz as ov  # noqa: E402
from onnxviz.convert import read_metadata  # noqa: E402

TOL = 1e-4
METHODS = {"odam": {}, "gradcam": {}, "saliency": {}, "drise": {"num_masks": 64, "seed": 0}}


@pytest.fixture(scope="module")
def keras_model():
    from models.scenes_keras import bundled_weights, keras_twin

    return keras_twin(bundled_weights())


@pytest.fixture(scope="module")
def exported(keras_model, tmp_path_factory):
    """The Keras export with onnxviz's metadata, and a copy without the task and layout."""
    from models.scenes import LABELS
    from onnxviz.convert.keras import convert

    d = tmp_path_factory.mktemp("keras_detector")
    path = d / "det-keras.onnx"
    proto = convert(keras_model, path, preprocess="unit", labels=list(LABELS), task="detect",
                    layout="yolov8")
    keep = [p for p in proto.metadata_props if p.key not in ("onnxviz.task", "onnxviz.layout")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    onnx.save(proto, d / "det-keras-no-task.onnx")
    return path, d / "det-keras-no-task.onnx"


@pytest.fixture(scope="module")
def models(exported):
    return ov.load(exported[0]), ov.load(ov.bundled_model("shapes_detector"))


@pytest.fixture(scope="module")
def photos():
    from models.scenes import make_scenes

    return make_scenes(4, seed=21).images


def test_the_head_converts_to_plain_onnx_ops(exported):
    proto = onnx.load(exported[0])
    assert {n.op_type for n in proto.graph.node} <= {
        "Conv", "Relu", "Softplus", "Sigmoid", "Mul", "Add", "Sub", "Slice", "Reshape", "Concat",
        "Transpose"}
    assert read_metadata(proto)["task"] == "detect" and read_metadata(proto)["layout"] == "yolov8"


def test_a_detector_from_its_metadata_and_from_its_shape(exported):
    for path in exported:
        m = ov.load(path)
        assert (m.task, m.layout, m.num_classes) == ("detect", "yolov8", 3), path.name
        assert m.input.layout == "NHWC" and m.input.size == (96, 96)
        assert m.shape_of(m.score_output)[1:] == (7, 180)
    assert "onnxviz.task" not in {p.key for p in onnx.load(exported[1]).metadata_props}


def test_the_raw_head_is_the_torch_exports_and_keras_own(models, keras_model, photos):
    keras_onnx, torch_onnx = models
    x = photos.astype(np.float32) / 255  # "unit", NHWC
    got = keras_onnx.run(keras_onnx.normalize(keras_onnx.to_pixels(list(photos))),
                         [keras_onnx.score_output])[keras_onnx.score_output]
    np.testing.assert_allclose(got, keras_model.predict(x, verbose=0), rtol=TOL, atol=TOL)
    want = torch_onnx.run(x.transpose(0, 3, 1, 2), [torch_onnx.score_output])
    np.testing.assert_allclose(got, want[torch_onnx.score_output], rtol=TOL, atol=TOL)
    assert got.shape == (4, 7, 180)


def test_predict_gives_the_torch_exports_boxes(models, photos):
    keras_onnx, torch_onnx = models
    for img in photos:
        a, b = keras_onnx.predict(img), torch_onnx.predict(img)
        assert len(a) == len(b) > 0
        assert a.class_id.tolist() == b.class_id.tolist()
        assert a.labels == b.labels
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_box_is_explained_as_on_the_torch_export(models, photos, method):
    """Every box of two photos, explained without a refusal, gives the torch export's map; a CAM
    is drawn at the box's own level (12x12 for anchors 0..143, else 6x6)."""
    keras_onnx, torch_onnx = models
    for img in photos[:2]:
        got = ov.explain(keras_onnx, img, method, **METHODS[method])
        want = ov.explain(torch_onnx, img, method, **METHODS[method])
        assert len(got) == len(want) == len(keras_onnx.predict(img)) > 0
        for e, f in zip(got, want):
            assert e.box == f.box and e.target == f.target and e.method == method
            assert np.isfinite(e.heatmap).all() and np.abs(e.heatmap).max() > 0
            scale = np.abs(f.heatmap).max()
            assert np.abs(e.heatmap - f.heatmap).max() <= TOL * scale, (method, e.box)
            if method in ("odam", "gradcam"):
                level = "head8_0" if e.extras["anchor"] < 144 else "head16_0"
                assert e.params["layer"] == level
                assert np.shape(e.raw) == ((12, 12) if level == "head8_0" else (6, 6))


def test_a_box_saliency_is_gradient_tapes_gradient_of_its_class_logit(models, photos):
    """The raw saliency map is the input gradient of the box's class logit (the head's Sigmoid
    read as the identity): ``tf.GradientTape`` on a float64 Keras twin at batch 2, read at the
    box's anchor of the NHWC head map of its level."""
    from models.scenes_keras import bundled_weights, keras_twin

    keras_onnx = models[0]
    twin = keras_twin(bundled_weights(), dtype="float64")
    heads = keras.Model(twin.inputs, [twin.get_layer("head8_1").output,
                                      twin.get_layer("head16_1").output])
    img = photos[0]
    found = ov.explain(keras_onnx, img, "saliency")
    assert len(found) >= 2
    levels = set()
    for e in found:
        a, c = e.extras["anchor"], e.target
        level, cell = (0, a) if a < 144 else (1, a - 144)
        levels.add(level)
        y, x = divmod(cell, 12 if level == 0 else 6)
        xt = tf.constant(np.repeat(img[None] / 255.0, 2, axis=0))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            logit = tf.reduce_sum(heads(xt)[level][:, y, x, 4 + c])
        want = tape.gradient(logit, xt).numpy()[0]
        got = np.asarray(e.raw, np.float64)
        assert got.shape == want.shape == (96, 96, 3)
        scale = np.abs(want).max()
        assert scale > 0 and np.abs(got - want).max() <= TOL * scale, (a, c)
    assert levels == {0, 1}  # boxes of both levels were checked
