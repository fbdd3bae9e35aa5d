"""Every metric against an answer known in closed form, on the inline linear classifier
(``logits = flatten(x) @ W + b`` on raw pixels): hiding a pixel changes logit t by exactly
``sum_c W[y, x, c, t] * (pixel - fill)``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import onnxviz as ov
from onnxviz import metrics
from onnxviz.errors import OptionError
from onnxviz.metrics._common import order_of, ranks, spearman, top_mask
from onnxviz.metrics.complexity import gini
from onnxviz.metrics.curves import auc, counts
from onnxviz.metrics.road import impute
from tests.metrics.metric_models import H, W, contribution, explanation, image, linear_model

TARGET = 1


@pytest.fixture(scope="module", params=["NCHW", "NHWC"])
def linear(request):
    return ov.load(linear_model(request.param), threads=1)


def logit(img, target=TARGET):
    from tests.explainers.linear_onnx import weights

    return float((weights()[..., target].astype(np.float64) * img).sum() + target)


def test_deletion_curve_is_the_logit_minus_the_removed_contributions(linear):
    img = image()
    heat = np.random.default_rng(3).random((H, W))
    steps = 12  # 120 pixels: 10 per step
    s = metrics.get("deletion")(linear, explanation(heat, img, TARGET), steps=steps, fill=0,
                                score="logit", batch_size=5)
    c = contribution(img, 0.0, TARGET).ravel()[order_of(heat)]
    removed = np.r_[0.0, np.cumsum(c)][counts(H * W, steps)]
    want = logit(img) - removed
    np.testing.assert_allclose(s.details["y"], want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(s.details["x"], np.arange(steps + 1) / steps)
    assert s.value == pytest.approx(np.trapezoid(want, dx=1 / steps), abs=1e-5)


def test_insertion_curve_adds_the_contributions_to_the_fill(linear):
    img = image()
    heat = np.random.default_rng(4).random((H, W))
    fill = (10.0, 200.0, 30.0)
    s = metrics.get("insertion")(linear, explanation(heat, img, TARGET), steps=24, fill=fill,
                                 score="logit")
    c = contribution(img, fill, TARGET).ravel()[order_of(heat)]
    start = logit(np.broadcast_to(np.asarray(fill), img.shape))
    want = start + np.r_[0.0, np.cumsum(c)][counts(H * W, 24)]
    np.testing.assert_allclose(s.details["y"], want, atol=1e-4)


def test_the_exact_attribution_deletes_fastest(linear):
    img = image()
    exact = contribution(img, 0.0, TARGET)
    d = metrics.get("deletion")
    best = d(linear, explanation(exact, img, TARGET), fill=0, score="logit", steps=20).value
    rng = np.random.default_rng(0)
    for _ in range(3):
        other = d(linear, explanation(rng.random((H, W)), img, TARGET), fill=0, score="logit",
                  steps=20).value
        assert best < other
    worst = d(linear, explanation(-exact, img, TARGET), fill=0, score="logit", steps=20).value
    assert best < worst


def test_batch_size_never_changes_a_curve(linear):
    img = image()
    e = explanation(np.random.default_rng(5).random((H, W)), img, TARGET)
    a = metrics.get("deletion")(linear, e, steps=30, batch_size=1).details["y"]
    b = metrics.get("deletion")(linear, e, steps=30, batch_size=64).details["y"]
    np.testing.assert_array_equal(a, b)
    a = metrics.get("road_morf")(linear, e, batch_size=1).details["y"]
    b = metrics.get("road_morf")(linear, e, batch_size=7).details["y"]
    np.testing.assert_array_equal(a, b)


def test_probability_scores_are_the_softmax(linear):
    img = image()
    e = explanation(np.random.default_rng(6).random((H, W)), img, TARGET)
    lo = metrics.get("deletion")(linear, e, steps=6, score="logit", fill=0)
    pr = metrics.get("deletion")(linear, e, steps=6, fill=0)
    assert np.all((pr.details["y"] > 0) & (pr.details["y"] < 1))
    assert np.argsort(lo.details["y"]).tolist() != [] and pr.value == pytest.approx(
        auc(pr.details["y"]))


def test_auc_and_counts():
    assert auc([1.0, 1.0, 1.0]) == 1.0
    assert auc([1.0, 0.0]) == 0.5
    assert counts(120, 12).tolist() == list(range(0, 121, 10))
    assert counts(10, 3).tolist() == [0, 3, 6, 10]


# ---- ROAD's imputation ------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last", [False, True])
def test_imputation_keeps_a_constant_and_a_ramp(channels_last):
    yy, xx = np.mgrid[0:16, 0:20].astype(np.float32)
    ramp = np.stack([2 * yy + 3 * xx + 1, -yy + 0.5 * xx, np.full_like(yy, 7)])
    x = ramp.transpose(1, 2, 0) if channels_last else ramp
    removed = np.zeros((16, 20), bool)
    removed[3:12, 4:15] = True  # away from the border: every removed pixel has 8 neighbours
    removed[5, 2] = True
    out = impute(x, removed, channels_last)
    np.testing.assert_allclose(out, x, atol=1e-4)  # weights symmetric and summing to 1
    noisy = impute(x, removed, channels_last, noise=np.ones((int(removed.sum()), 3)))
    np.testing.assert_allclose(noisy[removed] if channels_last else
                               noisy[:, removed].T, (x[removed] if channels_last else
                                                     x[:, removed].T) + 1, atol=1e-4)
    assert np.array_equal(out[~removed] if channels_last else out[:, ~removed],
                          x[~removed] if channels_last else x[:, ~removed])


def test_imputation_refuses_to_remove_everything():
    with pytest.raises(OptionError, match="at least one pixel"):
        impute(np.zeros((3, 4, 4), np.float32), np.ones((4, 4), bool), False)


def test_road_orders_and_fractions(linear):
    img = image()
    exact = contribution(img, img.reshape(-1, 3).mean(0), TARGET)
    e = explanation(exact, img, TARGET)
    morf = metrics.get("road_morf")(linear, e, score="logit", noise=0.0)
    lerf = metrics.get("road_lerf")(linear, e, score="logit", noise=0.0)
    assert morf.value < lerf.value
    assert morf.details["x"].tolist() == pytest.approx([0.1 * k for k in range(1, 10)])
    with pytest.raises(OptionError, match="fractions"):
        metrics.get("road_morf")(linear, e, fractions=(0.5, 1.0))
    seeded = [metrics.get("road_morf")(linear, e, seed=3).value for _ in range(2)]
    assert seeded[0] == seeded[1]


# ---- localisation, sparseness, statistics --------------------------------------------------

def test_pointing_games_known_answers():
    img = np.zeros((H, W, 3), np.uint8)
    heat = np.zeros((H, W))
    heat[2, 3] = 5.0
    heat[8, 8] = 1.0
    heat[0, 0] = -4.0
    box = {"y0": 1, "x0": 2, "y1": 4, "x1": 5}
    e = explanation(heat, img, 0)
    pg, epg = metrics.get("pointing_game"), metrics.get("energy_pointing_game")
    assert pg(None, e, box).value == 1.0
    assert epg(None, e, box).value == pytest.approx(5.0 / 6.0)
    far = {"y0": 6, "x0": 6, "y1": 10, "x1": 10}
    assert pg(None, e, far).value == 0.0
    # the peak (2, 3) is 5 px from the box corner (6, 6)
    assert pg(None, e, far, tolerance=3).value == 0.0
    assert pg(None, e, far, tolerance=6).value == 1.0
    mask = np.zeros((H, W), bool)
    mask[8, 8] = True
    assert epg(None, e, mask).value == pytest.approx(1.0 / 6.0)
    assert np.isnan(pg(None, e, None).value) and np.isnan(epg(None, e, None).value)
    big = np.kron(mask, np.ones((3, 3), bool))  # masks at another resolution are resized
    assert epg(None, e, big).value == pytest.approx(1.0 / 6.0)


def test_gini_known_answers():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    one = np.zeros(10)
    one[3] = -2.0
    assert gini(one) == pytest.approx(1 - 1 / 10)
    assert gini([0, 0, 1, 1]) == pytest.approx(0.5)  # (-1*0 -1*0 + 1 + 3) / (4 * 2)
    assert np.isnan(gini(np.zeros(5)))


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, (12, 10)).astype(float)
    b = a + rng.normal(0, 2, a.shape)
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a.ravel(), b.ravel())[0],
                                           abs=1e-12)
    np.testing.assert_array_equal(ranks(a), scipy.stats.rankdata(a.ravel()))
    assert np.isnan(spearman(np.ones(4), np.arange(4)))


def test_top_mask_takes_the_share_asked():
    heat = np.arange(100.0).reshape(10, 10)
    m = top_mask(heat, 10)
    assert m.sum() == 10 and m[9].all()


def test_unknown_metric_and_option():
    with pytest.raises(OptionError, match="unknown metric 'delet'; choose from: deletion"):
        metrics.get("delet")
    with pytest.raises(OptionError, match="has no option stepz"):
        metrics.get("deletion")(None, None, stepz=3)
    assert metrics.parse("all") == metrics.names()
    assert metrics.parse(["insertion,deletion", "insertion"]) == ["insertion", "deletion"]


def test_summary_interval():
    mean, lo, hi, n = metrics.interval([1.0, 2.0, 3.0, None, float("nan")])
    assert (mean, n) == (2.0, 3)
    half = scipy.stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
