"""Saliency family against Captum on torch originals: a smooth model exported here (tight) and
EfficientNet-Lite0 (where float32 rounding flips ReLU6 kinks, see :func:`_close_deep`)."""

from __future__ import annotations

import numpy as np
import pytest
from torch_onnx import assert_close as _close
from torch_onnx import export, model_inputs, random_images, smooth_cnn
from torch_onnx import raw_nchw as _raw_nchw

import onnxviz as ov

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
TARGETS = [281, 207]  # tabby cat on the cat photo; golden retriever on coffee (not its top class)


# ---- a smooth model (Softplus, Tanh: no kinks), exported with torch's TorchScript exporter ----

@pytest.fixture(scope="module")
def smooth(tmp_path_factory):
    net = smooth_cnn()
    m = export(net, tmp_path_factory.mktemp("smooth") / "smooth.onnx", size=32)
    images = random_images(3, 32, seed=1)
    return net, m, images, model_inputs(m, images)


def test_smooth_saliency_and_gradient_x_input_equal_captum(smooth):
    net, m, images, x = smooth
    targets = [0, 3, 4]
    want = captum_attr.Saliency(net).attribute(x, target=targets, abs=False).detach().numpy()
    got = ov.explain(m, images, method="saliency", target=targets)
    _close(_raw_nchw(got), want)
    for e in got:  # the paper's map: max over channels of |gradient|
        np.testing.assert_array_equal(e.heatmap, np.abs(e.raw).max(axis=-1))
    want = captum_attr.InputXGradient(net).attribute(x, target=targets).detach().numpy()
    got = ov.explain(m, images, method="gradient_x_input", target=targets, reduce="signed")
    _close(_raw_nchw(got), want)
    for e in got:
        np.testing.assert_allclose(e.heatmap, e.raw.sum(axis=-1), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("rule,captum_method", [("riemann", "riemann_right"),
                                                ("gausslegendre", "gausslegendre")])
@pytest.mark.parametrize("baseline", ["black", "blur", 100])
def test_smooth_integrated_gradients_equal_captum(smooth, rule, captum_method, baseline):
    net, m, images, x = smooth
    explainer = ov.explainers.get("integrated_gradients")(m, steps=16, rule=rule, baseline=baseline)
    base = torch.from_numpy(m.normalize(explainer.baseline_pixels(np.stack(images))))
    want, delta = captum_attr.IntegratedGradients(net).attribute(
        x, baselines=base, target=[1, 2, 0], n_steps=16, method=captum_method,
        return_convergence_delta=True)
    got = explainer.explain(images, target=[1, 2, 0])
    _close(_raw_nchw(got), want.detach().numpy())
    for e, d in zip(got, delta.detach().numpy()):
        assert abs(e.extras["completeness_gap"] - d) <= 1e-5 * max(1.0, abs(e.score))


def test_blur_baseline_is_a_blurred_image(smooth):
    _, m, images, _ = smooth
    ig = ov.explainers.get("integrated_gradients")(m, baseline="blur")
    base = ig.baseline_pixels(np.stack(images))
    assert base.shape == (3, 32, 32, 3)
    assert base.std(axis=(1, 2)).mean() < 0.5 * np.stack(images).std(axis=(1, 2)).mean()
    np.testing.assert_allclose(base.mean(axis=(1, 2)), np.stack(images).mean(axis=(1, 2)), rtol=0.1)


def test_smoothgrad_is_the_mean_of_noisy_gradients(smooth):
    """Smilkov et al. 2017 eq. 3, with the noise drawn here from the same seed."""
    net, m, images, x = smooth
    samples, noise = 5, 0.2
    e = ov.explain(m, images[1], method="smoothgrad", target=2, samples=samples, noise=noise, seed=5)
    x0 = x[1:2].numpy()
    eps = np.random.default_rng(5).standard_normal((samples, *x0.shape[1:]))
    noisy = torch.from_numpy((x0 + noise * (x0.max() - x0.min()) * eps).astype(np.float32))
    noisy.requires_grad_(True)
    net(noisy)[:, 2].sum().backward()
    _close(e.raw.transpose(2, 0, 1), noisy.grad.numpy().mean(axis=0))


# ---- EfficientNet-Lite0 and its torch original ------------------------------------------------

@pytest.fixture(scope="module")
def x(pixels, repo_module):
    build = repo_module("models.build_efficientnet")
    return torch.from_numpy(build.normalize(np.stack(pixels)))


def _close_deep(got, want, max_rel, mean_rel):
    """Equal up to float32 rounding in a deep ReLU6 network. A Clip kink that rounding puts on
    the other side changes the gradient over a whole receptive field: torch float32 itself differs
    from torch float64 by up to 1.8e-3 (photo) and 3.7e-2 (darkened photo on an IG path) of the
    largest gradient (measured). So the worst value gets that bound and the mean a tight one."""
    assert got.shape == want.shape
    err = np.abs(got - want) / np.abs(want).max()
    assert err.max() <= max_rel and err.mean() <= mean_rel, (err.max(), err.mean())
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] >= 0.9999


def test_effnet_saliency_equals_captum(effnet, torch_net, pixels, x):
    want = captum_attr.Saliency(torch_net).attribute(x, target=TARGETS, abs=False).detach().numpy()
    got = ov.explain(effnet, pixels, method="saliency", target=TARGETS)
    _close_deep(_raw_nchw(got), want, 2e-3, 1e-5)
    want = captum_attr.InputXGradient(torch_net).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(effnet, pixels, method="gradient_x_input", target=TARGETS)
    _close_deep(_raw_nchw(got), want, 2e-3, 1e-5)


def test_effnet_integrated_gradients_equal_captum(effnet, torch_net, pixels, x):
    baseline = torch.from_numpy(effnet.normalize(np.zeros((2, 224, 224, 3), np.float32)))
    want, delta = captum_attr.IntegratedGradients(torch_net).attribute(
        x, baselines=baseline, target=TARGETS, n_steps=4, method="gausslegendre",
        return_convergence_delta=True)
    got = ov.explain(effnet, pixels, method="integrated_gradients", target=TARGETS, steps=4)
    _close_deep(_raw_nchw(got), want.detach().numpy(), 5e-2, 1e-4)
    for e, d in zip(got, delta.detach().numpy()):
        assert abs(e.extras["completeness_gap"] - d) <= 2e-2 * max(1.0, abs(e.score))


def test_integrated_gradients_completeness(smooth, effnet, pixels):
    """The paper's completeness axiom: sum(attributions) -> S(x) - S(x') as steps grow."""
    _, m, images, _ = smooth
    runs = [ov.explain(m, images[0], method="integrated_gradients", steps=s, target=1, baseline=0,
                       rule="riemann") for s in (1, 4, 64)]
    gaps = [abs(e.extras["completeness_gap"]) for e in runs]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] <= 0.02 * abs(runs[2].score - runs[2].extras["baseline_score"])
    e = ov.explain(effnet, pixels[0], method="integrated_gradients", steps=8, baseline=128)
    delta = e.score - e.extras["baseline_score"]
    assert abs(e.raw.sum() - delta - e.extras["completeness_gap"]) <= 1e-3 * abs(delta)
    grey = effnet.forward(effnet.normalize(np.full((1, 224, 224, 3), 128, np.float32)))
    assert abs(e.extras["baseline_score"] - grey[0, e.target]) <= 1e-4 * max(1, abs(grey).max())


def test_options_are_checked(effnet):
    img = np.zeros((224, 224, 3), np.uint8)
    for method, opts in [("saliency", {"reduce": "mean"}), ("smoothgrad", {"samples": 0}),
                         ("integrated_gradients", {"baseline": "white"}),
                         ("integrated_gradients", {"rule": "simpson"}),
                         ("integrated_gradients", {"baseline": 300}),
                         ("saliency", {"batch_size": 0})]:
        with pytest.raises(ov.OptionError):
            ov.explain(effnet, img, method=method, **opts)
    with pytest.raises(ov.TargetError):
        ov.explain(effnet, img, method="saliency", target=1000)
    with pytest.raises(ov.TargetError):
        ov.explain(effnet, img, method="saliency", target="no such label")


def test_target_by_label(effnet, pixels):
    by_label = ov.explain(effnet, pixels[0], method="saliency", target=effnet.label_of(207))
    by_index = ov.explain(effnet, pixels[0], method="saliency", target=207)
    assert by_label.target == 207
    np.testing.assert_array_equal(by_label.raw, by_index.raw)
