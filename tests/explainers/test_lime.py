"""LIME against lime's LimeImageExplainer given the same superpixels and samples; invariants."""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from linear_onnx import contribution, image, linear_model
from onnxviz.errors import OptionError
from onnxviz.perturb import grid_segments, sample_matrix


def softmax(s):
    s = np.asarray(s, np.float64)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def both(effnet, chelsea):
    """onnxviz and lime on the same 4x5 grid superpixels and the same 60 x 20 sample matrix."""
    lime_image = pytest.importorskip("lime.lime_image")
    seg = grid_segments((224, 224), 20)
    keep = sample_matrix(60, 20, seed=11)

    class Injected(np.random.RandomState):
        """lime draws its samples with ``random_state.randint(0, 2, n * S)``: hand it ours."""

        def randint(self, low, high=None, size=None, dtype=int):
            if size == keep.size:
                return keep.ravel().astype(np.int64)
            return super().randint(low, high, size, dtype)

    def classifier_fn(images):  # lime's view of the same ONNX Runtime model
        return softmax(effnet.forward(effnet.normalize(images), batch_size=30))

    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=Injected(0))
    # a float image: lime fills hidden superpixels with their exact mean colour (a uint8 image
    # would truncate it), which is what onnxviz does
    ref = explainer.explain_instance(chelsea.astype(np.float64), classifier_fn, top_labels=3,
                                     hide_color=None, num_samples=60, batch_size=30,
                                     segmentation_fn=lambda image: seg, random_seed=0)
    ours = ov.explain(effnet, chelsea, method="lime", segments=seg, num_samples=60, seed=11,
                      top_labels=3, batch_size=30)
    np.testing.assert_array_equal(ours.samples, keep)
    return ours, ref, seg


def test_weights_equal_lime(both):
    ours, ref, seg = both
    assert ref.top_labels == ours.extras["top_labels"]
    assert ours.target == ref.top_labels[0]
    for label in ref.top_labels:
        want = np.zeros(20)
        for f, w in ref.local_exp[label]:
            want[f] = w
        coef, intercept, r2 = ours.fit(label)
        np.testing.assert_allclose(coef, want, rtol=0, atol=1e-6)
        assert abs(intercept - ref.intercept[label]) < 1e-6
        assert [f for f, _ in ours.local_exp(label)] == [f for f, _ in ref.local_exp[label]]
    # lime keeps the R^2 and local prediction of the last label fitted: the top one
    assert abs(ours.extras["r2"] - ref.score) < 1e-6
    assert abs(ours.extras["local_pred"] - ref.local_pred[0]) < 1e-6
    np.testing.assert_allclose(ours.heatmap, ours.raw[seg], rtol=1e-6)
    assert np.abs(ours.raw).max() > 1e-4


@pytest.mark.parametrize(
    "kw",
    [{}, {"num_features": 3, "hide_rest": True}, {"positive_only": False, "num_features": 6},
     {"positive_only": False, "negative_only": True, "num_features": 4},
     {"positive_only": False, "min_weight": 0.01, "num_features": 20}],
)
def test_image_and_mask_equal_lime(both, kw):
    ours, ref, _ = both
    label = ref.top_labels[1]
    img, mask = ours.image_and_mask(label, **kw)
    want_img, want_mask = ref.get_image_and_mask(label, **kw)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(np.asarray(img, np.float64), np.asarray(want_img, np.float64))
    assert (mask != 0).any()


def test_seed_and_batch_size(effnet, chelsea):
    seg = grid_segments((224, 224), 9)
    run = lambda **kw: ov.explain(effnet, chelsea, method="lime", segments=seg, num_samples=24,
                                  top_labels=0, **kw)
    a, b, c = run(seed=1, batch_size=24), run(seed=1, batch_size=5), run(seed=2, batch_size=24)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_allclose(a.raw, b.raw, rtol=0, atol=1e-6)  # batching changes nothing
    assert not np.array_equal(a.samples, c.samples)  # another seed, other samples
    assert a.samples[0].all() and a.scores[0, a.target] == pytest.approx(a.score)


def test_bad_options(effnet):
    with pytest.raises(OptionError, match="segmentation"):
        ov.explain(effnet, np.zeros((8, 8, 3), np.uint8), method="lime", segmentation="watershed")
    with pytest.raises(OptionError, match="segments have shape"):
        ov.explain(effnet, np.zeros((8, 8, 3), np.uint8), method="lime",
                   segments=np.zeros((10, 10), int))


@pytest.mark.parametrize("layout,fill", [("NCHW", "mean"), ("NHWC", 40), ("NHWC", "mean")])
def test_linear_model_is_recovered_exactly(layout, fill):
    """The logit of a linear model is linear in the on/off vector: an unpenalised surrogate
    finds each superpixel's contribution, with R^2 = 1."""
    m = ov.load(linear_model(layout))
    img = image()
    seg = np.repeat(np.arange(6), 20).reshape(12, 10)  # 6 horizontal bands of 2 rows
    e = ov.explain(m, img, method="lime", segments=seg, fill=fill, alpha=0.0, score="logit",
                   num_samples=64, target=2, batch_size=10)
    bands = img.reshape(6, 20, 3).astype(np.float64)
    colour = bands.mean(1, keepdims=True) if fill == "mean" else np.full((6, 1, 3), 40.0)
    fill_img = np.broadcast_to(colour, bands.shape).reshape(12, 10, 3)
    want = contribution(img, 0, 2) - contribution(fill_img, 0, 2)
    want = np.array([want[seg == s].sum() for s in range(6)])
    np.testing.assert_allclose(e.raw, want, rtol=1e-4, atol=1e-4)
    assert e.extras["r2"] == pytest.approx(1.0, abs=1e-6)
    assert e.extras["local_pred"] == pytest.approx(e.score, rel=1e-5)
