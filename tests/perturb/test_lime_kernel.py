"""LIME sample generator, kernel weights and ridge surrogate against numpy, scikit-learn and lime."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import pairwise_distances

from onnxviz.perturb import lime_batch, lime_kernel, sample_matrix, weighted_ridge


def test_sample_matrix_seeded_and_row0_kept():
    a, b = sample_matrix(200, 31, seed=3), sample_matrix(200, 31, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_matrix(200, 31, seed=4))
    assert a.dtype == np.uint8 and a.shape == (200, 31) and a[0].all()
    assert set(np.unique(a)) == {0, 1}
    assert abs(a[1:].mean() - 0.5) < 0.03  # fair coins (6000 draws: 4 sigma = 0.026)


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_is_one_gather(channels_last):
    rng = np.random.default_rng(0)
    H, W, S = 19, 26, 12
    segments = rng.integers(0, S, (H, W)).astype(np.int64)
    shape = (H, W, 3) if channels_last else (3, H, W)
    x0 = rng.standard_normal(shape).astype(np.float32)
    fill = rng.standard_normal(shape).astype(np.float32)
    keep = sample_matrix(40, S, seed=0)
    cmask = keep[:, segments].astype(bool)  # (N, H, W)
    cmask = cmask[..., None] if channels_last else cmask[:, None]
    want = np.where(cmask, x0, fill)
    for bs in (1, 9, 40):
        got = np.concatenate([
            _run(x0, fill, segments, keep, s, min(bs, 40 - s), channels_last)
            for s in range(0, 40, bs)
        ])
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want[0], x0)


def _run(x0, fill, segments, keep, start, n, channels_last):
    out = np.full((n, *x0.shape), np.nan, np.float32)
    lime_batch(x0, fill, segments, keep, start, out, channels_last)
    return out


def test_kernel_matches_lime_default():
    keep = sample_matrix(300, 20, seed=1)
    keep[5] = 0  # a sample hiding everything: cosine distance 1
    d = pairwise_distances(keep, keep[0].reshape(1, -1), metric="cosine").ravel()
    want = np.sqrt(np.exp(-(d**2) / 0.25**2))  # lime_image.LimeImageExplainer's kernel
    np.testing.assert_allclose(lime_kernel(keep, 0.25), want, rtol=1e-12, atol=1e-14)
    assert lime_kernel(keep)[0] == 1.0


@pytest.mark.parametrize("alpha", [1.0, 0.01])
def test_weighted_ridge_matches_sklearn(alpha):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 2, (400, 15)).astype(float)
    y = X @ rng.standard_normal(15) + 0.3 + 0.1 * rng.standard_normal(400)
    w = rng.random(400)
    coef, intercept, r2 = weighted_ridge(X, y, w, alpha=alpha)
    ref = Ridge(alpha=alpha, fit_intercept=True).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-9, atol=1e-11)
    assert abs(intercept - ref.intercept_) < 1e-10
    assert abs(r2 - ref.score(X, y, sample_weight=w)) < 1e-10
    # several targets at once give the same columns
    Y = np.stack([y, 2 * y - 1], axis=1)
    coefs, icpts, r2s = weighted_ridge(X, Y, w, alpha=alpha)
    np.testing.assert_allclose(coefs[0], coef, rtol=1e-10, atol=1e-12)
    assert coefs.shape == (2, 15) and icpts.shape == (2,) and r2s.shape == (2,)
