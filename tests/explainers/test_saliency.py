"""Saliency family against Captum on the torch original of EfficientNet-Lite0 and the papers."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import onnxviz as ov

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]
TARGETS = [281, 207]  # tabby cat on the cat photo; golden retriever on coffee (not its top class)


def repo_module(name: str):
    """Import a module of the repository's ``models/`` folder (not an installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def effnet(effnet_path):
    return ov.load(effnet_path)


@pytest.fixture(scope="module")
def torch_net():
    return repo_module("models.build_efficientnet").torch_model()


@pytest.fixture(scope="module")
def pixels():
    import cv2
    import skimage.data

    return [cv2.resize(im, (224, 224), interpolation=cv2.INTER_LINEAR)
            for im in (skimage.data.chelsea(), skimage.data.coffee())]


@pytest.fixture(scope="module")
def x(pixels):
    build = repo_module("models.build_efficientnet")
    return torch.from_numpy(build.normalize(np.stack(pixels)))


def _raw_nchw(explanations):
    return np.stack([e.raw for e in explanations]).transpose(0, 3, 1, 2)


def _close(got, want, rel=1e-4):
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= rel * np.abs(want).max()


def test_saliency_equals_captum(effnet, torch_net, pixels, x):
    from captum.attr import Saliency

    want = Saliency(torch_net).attribute(x, target=TARGETS, abs=False).detach().numpy()
    got = ov.explain(effnet, pixels, method="saliency", target=TARGETS)
    _close(_raw_nchw(got), want)
    # the paper's map: max over channels of |gradient|
    for e, w in zip(got, want):
        np.testing.assert_allclose(e.heatmap, np.abs(w).max(axis=0), atol=1e-4 * np.abs(w).max())


def test_gradient_x_input_equals_captum(effnet, torch_net, pixels, x):
    from captum.attr import InputXGradient

    want = InputXGradient(torch_net).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(effnet, pixels, method="gradient_x_input", target=TARGETS, reduce="signed")
    _close(_raw_nchw(got), want)
    for e, w in zip(got, want):
        np.testing.assert_allclose(e.heatmap, w.sum(axis=0), atol=1e-4 * np.abs(w).sum(axis=0).max())


@pytest.mark.parametrize("rule,captum_method", [("riemann", "riemann_right"),
                                                ("gausslegendre", "gausslegendre")])
def test_integrated_gradients_equals_captum(effnet, torch_net, pixels, x, rule, captum_method):
    from captum.attr import IntegratedGradients

    steps = 8
    baseline = torch.from_numpy(effnet.normalize(np.zeros((2, 224, 224, 3), np.float32)))
    want, delta = IntegratedGradients(torch_net).attribute(
        x, baselines=baseline, target=TARGETS, n_steps=steps, method=captum_method,
        return_convergence_delta=True)
    got = ov.explain(effnet, pixels, method="integrated_gradients", target=TARGETS, steps=steps,
                     rule=rule, baseline="black")
    _close(_raw_nchw(got), want.detach().numpy())
    for e, d in zip(got, delta.detach().numpy()):
        assert abs(e.extras["completeness_gap"] - d) <= 1e-3 * max(1.0, abs(e.score))


def test_integrated_gradients_completeness_improves_with_steps(effnet, pixels):
    gaps = [abs(ov.explain(effnet, pixels[0], method="integrated_gradients", steps=s,
                           baseline="blur").extras["completeness_gap"]) for s in (2, 24)]
    assert gaps[1] < gaps[0]
    e = ov.explain(effnet, pixels[0], method="integrated_gradients", steps=24, baseline=128)
    delta = e.score - e.extras["baseline_score"]
    assert abs(e.raw.sum() - delta - e.extras["completeness_gap"]) <= 1e-3 * abs(delta)


def test_smoothgrad_is_the_mean_of_noisy_gradients(effnet, torch_net, pixels, x):
    """Smilkov et al. 2017 eq. 3, with the noise drawn here from the same seed."""
    samples, noise = 3, 0.2
    e = ov.explain(effnet, pixels[0], method="smoothgrad", target=281, samples=samples,
                   noise=noise, seed=5)
    x0 = x[:1].numpy()
    eps = np.random.default_rng(5).standard_normal((samples, *x0.shape[1:]))
    noisy = torch.from_numpy((x0 + noise * (x0.max() - x0.min()) * eps).astype(np.float32))
    noisy.requires_grad_(True)
    torch_net(noisy)[:, 281].sum().backward()
    want = noisy.grad.numpy().mean(axis=0)
    _close(e.raw.transpose(2, 0, 1), want)


def test_options_are_checked(effnet):
    img = np.zeros((224, 224, 3), np.uint8)
    for method, opts in [("saliency", {"reduce": "mean"}), ("smoothgrad", {"samples": 0}),
                         ("integrated_gradients", {"baseline": "white"}),
                         ("integrated_gradients", {"rule": "simpson"}),
                         ("integrated_gradients", {"baseline": 300})]:
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
