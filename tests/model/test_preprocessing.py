"""Preprocessing presets against the formulas of the frameworks they come from."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.model.preprocessing import PRESETS, from_spec, preset

PIX = np.array([[[[0, 0, 0], [255, 255, 255], [10, 20, 30], [128, 64, 200]]]], np.uint8)


def test_imagenet_is_torchvision_normalize():
    # torchvision: ToTensor (/255) then Normalize(mean, std)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = (PIX / 255.0 - mean) / std
    np.testing.assert_allclose(preset("imagenet").apply(PIX), want, rtol=1e-6, atol=1e-6)


def test_tf_is_minus_one_to_one():
    out = preset("tf").apply(PIX)
    np.testing.assert_allclose(out[0, 0, 0], [-1, -1, -1], atol=1e-7)
    np.testing.assert_allclose(out[0, 0, 1], [1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(out, PIX / 127.5 - 1.0, atol=1e-6)


def test_caffe_is_keras_vgg16_preprocess_input():
    # keras.applications.vgg16.preprocess_input (mode "caffe"): RGB->BGR, minus the BGR means
    out = preset("caffe").apply(PIX)
    r, g, b = 10.0, 20.0, 30.0
    np.testing.assert_allclose(out[0, 0, 2], [b - 103.939, g - 116.779, r - 123.68], rtol=1e-6)
    assert preset("caffe").channel_order == "BGR"


def test_unit_and_raw():
    np.testing.assert_allclose(preset("unit").apply(PIX), PIX / 255.0, atol=1e-7)
    np.testing.assert_array_equal(preset("raw").apply(PIX), PIX.astype(np.float32))


def test_custom_dict_and_json():
    spec = {"mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0], "scale": 1.0,
            "channel_order": "RGB"}
    p = from_spec(spec)
    np.testing.assert_allclose(p.apply(PIX), (PIX - 127.0) / 128.0, rtol=1e-6)
    assert from_spec(json.dumps(spec)) == p and p.name == "custom"
    assert p.to_json() == spec
    bgr = from_spec({"mean": [1, 2, 3], "channel_order": "bgr"})
    np.testing.assert_allclose(bgr.apply(PIX)[0, 0, 2], [29, 18, 7])
    assert from_spec('{"preset": "tf"}') == PRESETS["tf"]


@pytest.mark.parametrize("bad, match", [
    ("imagenette", "unknown preprocessing preset"),
    ({"mean": [1, 2]}, "1 or 3"),
    ({"std": 0}, "non-zero"),
    ({"channel_order": "GBR"}, "channel_order"),
    ({"means": [1, 2, 3]}, "unknown preprocessing keys"),
    ("{bad json", "JSON"),
    (3.0, "preset name"),
])
def test_bad_specs(bad, match):
    with pytest.raises(ov.OptionError, match=match):
        from_spec(bad)


def test_metadata_argument_and_guess(make_cnn):
    m = ov.load(make_cnn(metadata={"onnxviz.preprocess": '{"preset": "caffe"}'}))
    assert (m.preprocessing.name, m.preprocessing.source) == ("caffe", "metadata")
    m = ov.load(make_cnn(metadata={"onnxviz.preprocess": '{"preset": "caffe"}'}), preprocess="tf")
    assert (m.preprocessing.name, m.preprocessing.source) == ("tf", "argument")
    with pytest.warns(UserWarning, match="guessing preprocessing 'unit'"):
        m = ov.load(make_cnn())
    assert m.preprocessing.source == "guess"
    with pytest.warns(UserWarning, match="guessing preprocessing 'imagenet'"):
        ov.load(make_cnn(size=96))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = ov.load(make_cnn(metadata={"onnxviz.preprocess": '{"preset": "nope"}'}))
    messages = [str(w.message) for w in caught]
    assert any("ignoring bad onnxviz.preprocess" in t for t in messages)
    assert m.preprocessing.source == "guess"


def test_matlab_is_raw_without_warning(fixtures_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = ov.load(fixtures_dir / "matlab_rul_cnn.onnx")
    assert (m.preprocessing.name, m.preprocessing.source) == ("raw", "matlab")


def test_normalize_layouts_and_gray(make_cnn):
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    nchw = ov.load(make_cnn(), preprocess="unit").preprocess(img)
    np.testing.assert_allclose(nchw[0], img.transpose(2, 0, 1) / 255.0, atol=1e-7)
    gray = ov.load(make_cnn(channels=1), preprocess="raw").preprocess(img)
    lum = img.astype(np.float64) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(gray[0, 0], lum, rtol=1e-5)
    assert gray.dtype == np.float32 and gray.shape == (1, 1, 8, 8)


def test_preprocess_resizes_and_batches(make_cnn):
    m = ov.load(make_cnn(), preprocess="imagenet")
    x = m.preprocess(["skimage:chelsea", np.zeros((3, 5, 3), np.uint8)])
    assert x.shape == (2, 3, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[1, :, 0, 0], -np.array([0.485, 0.456, 0.406]) / [0.229, 0.224,
                                                                                   0.225],
                               rtol=1e-6)
    np.testing.assert_array_equal(m.preprocess(m.to_pixels("skimage:chelsea")[0]),
                                  m.preprocess("skimage:chelsea"))
    with pytest.raises(ov.OptionError, match="no images"):
        m.preprocess([])


def test_four_channel_models_get_an_opaque_alpha(make_cnn):
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = ov.load(make_cnn(channels=4), preprocess="unit").preprocess(img)
    assert x.shape == (1, 4, 8, 8)
    np.testing.assert_allclose(x[0, :3], img.transpose(2, 0, 1) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(x[0, 3], 1.0)


def test_array_batches_are_lists_of_images(make_cnn):
    m = ov.load(make_cnn(), preprocess="unit")
    batch = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(m.preprocess(batch), m.preprocess(list(batch)))
    assert len(m.predict(batch, top=2)) == 3
