"""onnxviz.load on real third-party files, bundled models and inline graphs."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxviz as ov
from onnxviz.cli.inspect import describe

PHOTOS = ["skimage:chelsea", "skimage:coffee", "skimage:astronaut"]


def _load(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preprocessing guesses for files without metadata
        return ov.load(path, **kw)


def test_fixtures_are_there(fixtures_dir):
    assert len(list(fixtures_dir.glob("*.onnx"))) >= 6, f"fixtures missing from {fixtures_dir}"


@pytest.fixture
def fx(fixtures_dir):
    return lambda name: fixtures_dir / name


def test_fixture_loads_inspects_predicts(third_party_path):
    path = third_party_path
    m = _load(path)
    info = describe(m)
    assert info["input"]["name"] == m.input.name and info["num_classes"] == m.num_classes
    preds = m.predict(PHOTOS, top=3)
    assert len(preds) == 3 and all(len(p) == min(3, m.num_classes) for p in preds)
    scores = m.forward(m.preprocess(PHOTOS))
    assert scores.shape == (3, m.num_classes) and np.isfinite(scores).all()
    top = preds[0][0]
    assert top.index == int(np.argmax(scores[0])) and top.score == pytest.approx(scores[0].max())


def test_fixture_normalization_keeps_results(third_party_path):
    path = third_party_path
    """The normalized graph (IR fix, opset upgrade, symbolic batch) equals the file run as-is."""
    m = _load(path)
    x = np.random.default_rng(1).standard_normal((1, *m.input.shape)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out_name = [o.name for o in onnx.load(str(path)).graph.output][0]
    want = sess.run([out_name], {m.input.name: x})[0].reshape(1, -1)
    got = m.run(x, [out_name])[out_name].reshape(1, -1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _batch_equals_singles(m):
    x = m.preprocess(PHOTOS)
    batch = m.forward(x)
    singles = np.concatenate([m.forward(x[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.forward(x, batch_size=2), singles, rtol=1e-5, atol=1e-5)


def test_fixture_batch_of_three_equals_three_singles(third_party_path):
    _batch_equals_singles(_load(third_party_path))


@pytest.mark.parametrize("fixture", ["effnet_path", "shapes_path", "shapes_keras_path"])
def test_bundled_batch_of_three_equals_three_singles(fixture, request):
    m = ov.load(request.getfixturevalue(fixture))
    assert m.preprocessing.source == "metadata"
    _batch_equals_singles(m)


def test_effnet_predicts_a_cat(effnet_path):
    m = ov.load(effnet_path)
    assert m.labels_source in ("metadata", "imagenet") and m.num_classes == 1000
    top = m.predict("skimage:chelsea", top=1)[0]
    assert 281 <= top.index <= 285 and top.label == m.labels[top.index]
    assert 0.0 < top.probability <= 1.0


def test_matlab_tansig(fx):
    m = ov.load(fx("matlab_mnist_tansig.onnx"))
    assert m.input.layout == "NCHW" and m.input.size == (1, 784) and m.input.channels == 1
    assert m.input.flat_size == (28, 28)
    assert m.preprocessing.name == "raw" and m.preprocessing.source == "matlab"
    assert (m.prob_output, m.score_output) == ("softmax_3", "softmax_3_Flatten")
    inits = {t.name for t in m.proto.graph.initializer}
    assert [i.name for i in m.proto.graph.input] == ["input"] and "input_Mean" in inits
    # a drawn digit: to_pixels resizes to 28x28 then flattens row by row
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255
    px = m.to_pixels(digit)
    assert px.shape == (1, 1, 784, 3)
    np.testing.assert_array_equal(px[0, 0, :, 0], digit.reshape(-1))
    x = m.preprocess(digit)
    assert x.shape == (1, 1, 1, 784)
    probs = m.probabilities(m.forward(x))
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
    raw = m.run(x, ["softmax_3"])["softmax_3"]
    np.testing.assert_allclose(probs, raw, rtol=1e-5, atol=1e-6)


def test_matlab_rul_is_regression(fx):
    m = ov.load(fx("matlab_rul_cnn.onnx"))
    assert m.is_regression and m.num_classes == 1 and m.prob_output is None
    assert m.input.size == (20, 20) and m.input.channels == 1 and m.input.batch == "BatchSize"
    scores = m.forward(m.preprocess(PHOTOS))
    np.testing.assert_array_equal(m.resolve_targets(None, scores), [0, 0, 0])
    assert m.label_of(0) == "output"
    (p,) = m.predict("skimage:camera")
    assert p.probability is None and p.index == 0


def test_tf2onnx_is_nhwc(fx):
    m = _load(fx("tf2onnx_cifar_small.onnx"))
    assert (m.input.name, m.input.layout, m.input.size, m.input.channels) == ("x:0", "NHWC",
                                                                               (32, 32), 3)
    x = m.preprocess("skimage:chelsea")
    assert x.shape == (1, 32, 32, 3)


def test_old_pytorch_fixed_batch_made_symbolic(fx):
    m = _load(fx("pytorch_cifar_resnet_2b.onnx"))
    assert not m.fixed_batch and m.opset >= 13
    assert m.proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert any("symbolic" in n for n in m.notes)


def test_hard_coded_batch_stays_fixed(make_cnn):
    """Reshape to [1, -1] breaks batch 2: the runtime then feeds images one at a time."""
    m = ov.load(make_cnn(batch=1, reshape_batch1=True), preprocess="unit")
    assert m.fixed_batch
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    singles = np.concatenate([m.forward(x[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(m.forward(x), singles, rtol=1e-6)
    assert m.forward(x).shape == (5, 4)


def test_symbolic_batch_when_graph_allows(make_cnn):
    m = ov.load(make_cnn(batch=1), preprocess="unit")
    assert not m.fixed_batch


def test_sources_path_bytes_proto(make_cnn, tmp_path):
    proto = make_cnn(softmax=True)
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    results = [ov.load(src, preprocess="unit").forward(x)
               for src in (proto, proto.SerializeToString(), path, str(path))]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert len(proto.graph.input) == 1  # the caller's proto is not modified


def test_softmax_head(make_cnn):
    m = ov.load(make_cnn(softmax=True), preprocess="unit")
    assert (m.score_output, m.prob_output) == ("logits", "prob")
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    scores = m.forward(x)
    np.testing.assert_allclose(m.probabilities(scores), m.run(x, ["prob"])["prob"], rtol=1e-5,
                               atol=1e-7)


def test_no_softmax_probabilities_are_scores(make_cnn):
    m = ov.load(make_cnn(), preprocess="unit")
    assert m.prob_output is None and m.score_output == "logits"
    s = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    np.testing.assert_array_equal(m.probabilities(s), s)


def test_nhwc_graph(make_cnn):
    m = ov.load(make_cnn(layout="NHWC"), preprocess="unit")
    assert m.input.layout == "NHWC" and m.input.channel_axis == 3
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = m.preprocess(img)
    np.testing.assert_allclose(x[0], img / 255.0, rtol=1e-6)


def test_several_inputs_need_a_name(make_cnn):
    proto = make_cnn()
    extra = onnx.helper.make_tensor_value_info("mask", onnx.TensorProto.FLOAT, ["N", 1, 8, 8])
    proto.graph.input.append(extra)
    proto.graph.node.append(onnx.helper.make_node("Identity", ["mask"], ["mask_out"]))
    proto.graph.output.append(onnx.helper.make_tensor_value_info("mask_out", 1, ["N", 1, 8, 8]))
    with pytest.raises(ov.ModelError, match="input=NAME"):
        ov.load(proto, preprocess="unit")
    with pytest.raises(ov.ModelError, match="unknown input 'nope'"):
        ov.load(proto, preprocess="unit", input="nope")


def test_symbolic_spatial_size(make_cnn):
    proto = make_cnn()
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    m = ov.load(proto, preprocess="unit")
    assert m.input.dynamic_size and m.input.size == (224, 224)
    assert m.preprocess("skimage:chelsea").shape == (1, 3, 224, 224)
    np.testing.assert_allclose(m.forward(np.zeros((1, 3, 16, 20), np.float32)),
                               m.forward(np.zeros((1, 3, 8, 8), np.float32)), rtol=1e-5, atol=1e-6)


def test_forward_checks_the_input_shape(make_cnn):
    m = ov.load(make_cnn(), preprocess="unit")
    with pytest.raises(ov.OptionError, match="preprocess"):
        m.forward(np.zeros((1, 8, 8, 3), np.float32))
