"""DeepLIFT's multipliers (multiply_by_inputs=False) and DeepLIFT SHAP against Captum's DeepLift
and DeepLiftShap on a small CNN exported here (ReLU, Tanh, Sigmoid), in float64 on the Captum
side and float32 here, to 1e-5 of the largest value; summation-to-delta; batch size."""

from __future__ import annotations

import numpy as np
import pytest
from torch_onnx import assert_close as _close
from torch_onnx import export, float64_inputs, random_images
from torch_onnx import raw_nchw as _raw

import onnxviz as ov
from onnxviz.errors import OptionError

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
TARGETS = [0, 3, 4]


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.c1, self.r1 = nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()
        self.c2, self.r2 = nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU()
        self.gap, self.l1, self.t = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 8), nn.Tanh()
        self.l2, self.s, self.l3 = nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 5)

    def forward(self, x):
        x = torch.flatten(self.gap(self.r2(self.c2(self.r1(self.c1(x))))), 1)
        return self.l3(self.s(self.l2(self.t(self.l1(x)))))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.manual_seed(0)
    net = _Net().eval()
    path = tmp_path_factory.mktemp("dl") / "dl.onnx"
    m = export(net, path, preprocess="imagenet", threads=1)
    images = random_images(3, 16, seed=3)
    x = float64_inputs(m, images)
    return net.double(), m, images, x


def test_multipliers_equal_captum(net):
    net, m, images, x = net
    want = captum_attr.DeepLift(net, multiply_by_inputs=False).attribute(
        x, target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method="deeplift", multiply_by_inputs=False, target=TARGETS,
                     reduce="signed")
    _close(_raw(got), want)
    full = ov.explain(m, images, method="deeplift", target=TARGETS, reduce="signed")
    np.testing.assert_allclose(_raw(full), x.numpy() * _raw(got), rtol=1e-5,
                               atol=1e-6 * np.abs(_raw(full)).max())  # zero baseline: x * m
    for a, b in zip(got, full):  # the delta is that of (x - x') m either way
        assert a.extras["convergence_delta"] == pytest.approx(b.extras["convergence_delta"])


@pytest.mark.parametrize("multiply", [True, False])
def test_deeplift_shap_equals_captum(net, multiply):
    from onnxviz.explainers import get
    from onnxviz.explainers.gradient_shap import GradientShap

    net, m, images, x = net
    kw = {"samples": 4, "seed": 7}
    base = get("deeplift_shap")(m, **kw).reference(x.numpy().astype(np.float32), np.stack(images))
    same = GradientShap(m, **kw, baseline="uniform").baselines(x.numpy(), np.stack(images))
    np.testing.assert_allclose(base, same, rtol=1e-6)  # Gradient SHAP's baseline set
    want = captum_attr.DeepLiftShap(net, multiply_by_inputs=multiply).attribute(
        x, baselines=torch.from_numpy(base.astype(np.float64)), target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method="deeplift_shap", multiply_by_inputs=multiply,
                     target=TARGETS, reduce="signed", batch_size=5, **kw)
    _close(_raw(got), want)
    one = ov.explain(m, images, method="deeplift_shap", multiply_by_inputs=multiply,
                     target=TARGETS, reduce="signed", batch_size=1, **kw)
    for a, b in zip(got, one):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, atol=1e-7 * np.abs(want).max())
    for e in got:  # summation to S(x) - mean_k S(b_k)
        delta = e.score - e.extras["baseline_score"]
        assert abs(e.extras["convergence_delta"]) <= 1e-5 * max(1.0, abs(delta))


def test_one_baseline_is_deeplift_and_refusals(net):
    _, m, images, _ = net
    shap = ov.explain(m, images, method="deeplift_shap", baseline="black", target=TARGETS)
    plain = ov.explain(m, images, method="deeplift", baseline="black", target=TARGETS)
    for a, b in zip(shap, plain):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, atol=1e-9)
    for method, bad in (("deeplift_shap", {"samples": 0}), ("deeplift_shap", {"seed": -1}),
                        ("deeplift_shap", {"baseline": "blurry"}),
                        ("deeplift", {"baseline": "uniform"}),
                        ("deeplift", {"multiply_by_inputs": "no"})):
        with pytest.raises(OptionError, match=next(iter(bad))):
            ov.explain(m, images[0], method=method, **bad)
