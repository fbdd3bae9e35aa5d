"""KernelSHAP against brute-force Shapley values (itertools over the coalitions of 8 superpixels,
each masked image built here with numpy), its sampled mode converging to them, Captum's KernelShap
given the same coalitions, and a linear model whose Shapley values are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from linear_onnx import contribution, image, linear_model

import onnxviz as ov
from onnxviz.errors import OptionError
from onnxviz.explainers.perturbation.kernelshap import all_coalitions, kernel_coalitions

torch = pytest.importorskip("torch")
SIZE = 16
BANDS = np.repeat(np.arange(8), 2)[None, :].repeat(SIZE, axis=0)  # 8 bands of 2 columns


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Softplus(),
        torch.nn.Conv2d(6, 8, 3, stride=2, padding=1), torch.nn.Tanh(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4),
    ).eval()
    with torch.no_grad():  # larger weights: a model far from linear in the superpixels
        net[0].weight *= 4
        net[2].weight *= 4
        net[6].weight *= 20
    path = tmp_path_factory.mktemp("kernelshap") / "cnn.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, SIZE, SIZE), str(path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17, dynamo=False)
    m = ov.load(path, preprocess="unit", threads=1)
    img = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return net, m, img


def _softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _brute_force(m, img, seg, target, fill=0.0, score="probability"):
    """Shapley values by their definition: every coalition S of every player j, weighted by
    |S|! (M - |S| - 1)! / M!, the value of S the model's score on the image with only S shown."""
    n = int(seg.max()) + 1
    subsets = [frozenset(c) for k in range(n + 1) for c in itertools.combinations(range(n), k)]
    images = np.stack([np.where(np.isin(seg, list(s))[..., None], img.astype(np.float32), fill)
                       for s in subsets])
    scores = m.forward(m.normalize(images)).astype(np.float64)
    scores = _softmax(scores) if score == "probability" else scores
    v = dict(zip(subsets, scores[:, target]))
    phi = np.zeros(n)
    for j in range(n):
        for s in subsets:
            if j not in s:
                w = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
                phi[j] += w * (v[s | {j}] - v[s])
    return phi, v[frozenset()]


def test_exact_mode_equals_brute_force_shapley_values(cnn):
    _, m, img = cnn
    e = ov.explain(m, img, method="kernelshap", segments=BANDS, exact=True, fill=0, target=2)
    want, empty = _brute_force(m, img, BANDS, 2)
    assert e.extras["forwards"] == 256 and e.extras["exact"]
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(e.raw, want, rtol=0, atol=1e-6 * np.abs(want).max() + 1e-9)
    assert e.extras["base_value"] == pytest.approx(empty, abs=1e-7)
    assert e.extras["base_value"] + e.raw.sum() == pytest.approx(e.score, abs=1e-6)  # efficiency
    np.testing.assert_array_equal(e.heatmap, e.raw[BANDS].astype(np.float32))


def test_sampled_mode_converges_to_the_shapley_values(cnn):
    _, m, img = cnn
    run = lambda n, seed: ov.explain(m, img, method="kernelshap", segments=BANDS, fill=0,
                                     target=2, num_samples=n, seed=seed, batch_size=512)
    exact = ov.explain(m, img, method="kernelshap", segments=BANDS, exact=True, fill=0, target=2)
    scale = np.abs(exact.raw).max()
    errors = {n: np.mean([np.abs(run(n, seed).raw - exact.raw).max() for seed in (1, 2, 3)])
              for n in (100, 1000, 10000)}
    assert errors[100] > errors[1000] > errors[10000]
    assert errors[100] > 5 * errors[10000]  # 1 / sqrt(n): 10x over two decades
    assert errors[10000] < 0.1 * scale
    e = run(100, 1)
    assert e.extras["base_value"] + e.raw.sum() == pytest.approx(e.score, abs=1e-6)


def test_coalitions_follow_the_shapley_kernel():
    keep = kernel_coalitions(40000, 6, seed=0)
    assert keep[0].all() and not keep[1].any()
    sizes = keep[2:].sum(axis=1)
    k = np.arange(1, 6)
    p = 5 / (k * (6 - k))
    np.testing.assert_allclose(np.bincount(sizes, minlength=6)[1:] / len(sizes), p / p.sum(),
                               atol=0.01)
    # given its size, every coalition is as likely: each superpixel is kept k/M of the time
    for size in k:
        np.testing.assert_allclose(keep[2:][sizes == size].mean(axis=0), size / 6, atol=0.03)
    assert not np.array_equal(kernel_coalitions(50, 6, seed=1), kernel_coalitions(50, 6, seed=2))
    full = all_coalitions(4)
    assert len({tuple(r) for r in full}) == 16 and full[0].all() and not full[-1].any()


def test_sampled_mode_equals_captum_kernelshap_on_the_same_coalitions(cnn):
    """Captum puts weight 1e6 on the all/none samples where onnxviz imposes the efficiency
    constraint exactly, and fits float32 scores: equal to 5e-5 of the largest value (logits,
    baseline 0)."""
    from captum.attr import KernelShap

    net, m, img = cnn
    keep = kernel_coalitions(300, 8, seed=4)

    class SameCoalitions(KernelShap):
        def kernel_shap_perturb_generator(self, original_inp, **kwargs):
            for row in keep:
                yield torch.from_numpy(row[None].astype(np.int64))

    x = torch.from_numpy(m.normalize(img[None]))
    mask = torch.from_numpy(BANDS[None, None])
    want = SameCoalitions(net).attribute(x, baselines=0.0, target=1, feature_mask=mask,
                                         n_samples=len(keep), return_input_shape=False)
    want = want.detach().double().numpy()[0]
    got = ov.explain(m, img, method="kernelshap", segments=BANDS, fill=0, target=1,
                     num_samples=300, seed=4, score="logit")
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got.raw, want, rtol=0, atol=5e-5 * np.abs(want).max())


def test_batch_size_changes_nothing(cnn):
    _, m, img = cnn
    run = lambda bs, **kw: ov.explain(m, img, method="kernelshap", segments=BANDS, fill=0,
                                      batch_size=bs, **kw)
    np.testing.assert_allclose(run(7, num_samples=60).raw, run(60, num_samples=60).raw,
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose(run(13, exact=True).raw, run(256, exact=True).raw, rtol=0, atol=1e-7)


@pytest.mark.parametrize("exact", [True, False])
def test_linear_model_gets_each_superpixels_contribution(exact):
    """For a linear logit the Shapley value of a superpixel is its contribution, and the
    constrained regression finds it from any coalitions."""
    m = ov.load(linear_model("NHWC"))
    img = image()
    seg = np.repeat(np.arange(6), 20).reshape(12, 10)
    e = ov.explain(m, img, method="kernelshap", segments=seg, fill=40, score="logit",
                   exact=exact, num_samples=30, target=1)
    per_pixel = contribution(img, 40, 1)
    want = np.array([per_pixel[seg == s].sum() for s in range(6)])
    np.testing.assert_allclose(e.raw, want, rtol=1e-4, atol=1e-4)


def test_exact_mode_refuses_many_superpixels(cnn):
    _, m, img = cnn
    with pytest.raises(OptionError, match="at most 16 superpixels"):
        ov.explain(m, img, method="kernelshap", segments=np.arange(256).reshape(16, 16),
                   exact=True)
    with pytest.raises(OptionError, match="num_samples"):
        ov.explain(m, img, method="kernelshap", num_samples=2)
