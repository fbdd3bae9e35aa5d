"""Gradient SHAP against Captum's GradientShap, onnxviz's draws injected into Captum's random
calls, on the smooth CNN of test_saliency (float64 reference, rtol 1e-5 of the largest value)."""

from __future__ import annotations

import numpy as np
import pytest
from torch_onnx import export, float64_inputs, random_images, smooth_cnn

import onnxviz as ov
from onnxviz.explainers.gradient_shap import draws

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
TARGETS = [0, 3, 4]


@pytest.fixture(scope="module")
def smooth(tmp_path_factory):
    net = smooth_cnn()
    m = export(net, tmp_path_factory.mktemp("gshap") / "smooth.onnx", threads=1)
    images = random_images(3, 16, seed=1)
    return net.double(), m, images, float64_inputs(m, images)


def _inject(monkeypatch, noise, alpha, index, n):
    """Captum's draws (torch.normal for the noise, np.random.uniform for the path positions,
    np.random.choice for the baselines), image-major as Captum expands its inputs."""
    def normal(mean, std):
        return std * torch.from_numpy(np.tile(noise, (n, 1, 1, 1)))

    monkeypatch.setattr(torch, "normal", normal)
    monkeypatch.setattr(np.random, "uniform", lambda lo, hi, size: np.tile(alpha, n)[:size])
    monkeypatch.setattr(np.random, "choice", lambda m, size: np.tile(index, n)[:size])


@pytest.mark.parametrize("baseline,stdev", [("zero", 0.0), ("uniform", 0.1)])
def test_gradient_shap_equals_captum(smooth, monkeypatch, baseline, stdev):
    net, m, images, x = smooth
    samples = 6
    e = ov.explainers.get("gradient_shap")(m, samples=samples, stdev=stdev, baseline=baseline,
                                           seed=3, reduce="signed", batch_size=4)
    got = e.explain(images, target=TARGETS)
    base = e.baselines(m.normalize(np.stack(images)), np.stack(images))
    noise, alpha, index = draws(3, samples, tuple(x.shape[1:]), len(base))
    _inject(monkeypatch, noise, alpha, index, len(images))
    want = captum_attr.GradientShap(net).attribute(
        x, baselines=torch.from_numpy(base), target=TARGETS, n_samples=samples,
        stdevs=stdev).detach().numpy()
    raw = np.stack([g.raw for g in got]).transpose(0, 3, 1, 2)
    assert np.abs(raw - want).max() <= 1e-5 * np.abs(want).max()


def test_batch_size_and_options(smooth):
    _, m, images, _ = smooth
    a = ov.explain(m, images, method="gradient_shap", target=TARGETS, baseline="uniform",
                   stdev=0.1, batch_size=1)
    b = ov.explain(m, images, method="gradient_shap", target=TARGETS, baseline="uniform",
                   stdev=0.1, batch_size=7)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p.raw, q.raw, rtol=1e-5, atol=1e-7)
    one = ov.explain(m, images[1], method="gradient_shap", target=TARGETS[1],
                     baseline="uniform", stdev=0.1)
    np.testing.assert_allclose(one.raw, a[1].raw, rtol=1e-5, atol=1e-7)
    for bad in ({"stdev": -1.0}, {"baseline": "gray"}, {"samples": 0}):
        with pytest.raises(ov.OptionError):
            ov.explain(m, images, method="gradient_shap", **bad)
