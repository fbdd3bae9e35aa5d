"""Modified-gradient methods (rule sets of onnxviz's autodiff) against Captum on a small CNN
exported here. References run in float64 on batches of 3 (torch's autograd through an eval
BatchNorm2d can be wrong at batch 1); the ONNX side runs float32, hence rtol 1e-5 of the maximum."""

from __future__ import annotations

import numpy as np
import pytest
from torch_onnx import assert_close as _close
from torch_onnx import export, float64_inputs, random_images
from torch_onnx import raw_nchw as _raw_nchw

import onnxviz as ov
from onnxviz.errors import OptionError

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
TARGETS = [0, 3, 4]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """Conv-BN-ReLU-MaxPool-Conv-ReLU-GAP-Linear with distinct ReLU modules (Captum hooks
    modules), its ONNX export (BN folded into the Conv) and three images as float64 tensors."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5),
    ).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    m = export(net, tmp_path_factory.mktemp("cnn") / "cnn.onnx", threads=1)
    images = random_images(3, 16, seed=1)
    x = float64_inputs(m, images)
    return net.double(), m, images, x


@pytest.mark.parametrize("method,peer", [("guided_backprop", "GuidedBackprop"),
                                         ("deconvolution", "Deconvolution")])
def test_relu_rule_sets_equal_captum(cnn, method, peer):
    net, m, images, x = cnn
    want = getattr(captum_attr, peer)(net).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method=method, target=TARGETS, reduce="signed")
    _close(_raw_nchw(got), want)
    plain = captum_attr.Saliency(net).attribute(x, target=TARGETS, abs=False).detach().numpy()
    assert np.abs(want - plain).max() > 0.1 * np.abs(plain).max()  # the model tells them apart
    for e in got:
        np.testing.assert_allclose(e.heatmap, e.raw.sum(axis=-1), rtol=1e-6, atol=1e-9)


def test_guided_gradcam_equals_captum(cnn):
    """Captum's GuidedGradCam on the last ReLU, upsampling bilinearly as onnxviz does (Captum's
    default is nearest)."""
    net, m, images, x = cnn
    want = captum_attr.GuidedGradCam(net, net[5]).attribute(
        x, target=TARGETS, interpolate_mode="bilinear").detach().numpy()
    got = ov.explain(m, images, method="guided_gradcam", target=TARGETS, layer="5")
    _close(_raw_nchw(got), want)
    assert all(e.extras["layer"] == "5" for e in got)
    want = captum_attr.GuidedGradCam(net, net[5]).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method="guided_gradcam", target=TARGETS, layer="5",
                     upsample="nearest")  # Captum's default
    _close(_raw_nchw(got), want)
    default = ov.explain(m, images, method="guided_gradcam", target=TARGETS)
    assert default[0].params["layer"]  # the layer picked is reported


@pytest.mark.parametrize("method", ["guided_backprop", "deconvolution", "guided_gradcam"])
def test_batch_size_does_not_change_results(cnn, method):
    _, m, images, _ = cnn
    one = ov.explain(m, images, method=method, target=TARGETS, batch_size=1)
    all_ = ov.explain(m, images, method=method, target=TARGETS, batch_size=3)
    for a, b in zip(one, all_):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, atol=1e-7)


def test_rule_sets_change_only_their_ops(cnn, tmp_path):
    """On a model without ReLUs the ReLU rule sets are the gradient; an unknown set is refused."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 5)).eval()
    m = export(net, tmp_path / "tanh.onnx", size=8, threads=1)
    images = random_images(2, 8, seed=2)
    plain = ov.explain(m, images, method="saliency", target=[1, 2], reduce="signed")
    for method in ("guided_backprop", "deconvolution"):
        with pytest.warns(UserWarning, match="no Relu node"):
            got = ov.explain(m, images, method=method, target=[1, 2], reduce="signed")
        for a, b in zip(got, plain):
            np.testing.assert_array_equal(a.raw, b.raw)
    x = m.normalize(m.to_pixels(images))
    with pytest.raises(OptionError, match="guided_backprop"):
        m.gradients(x, np.eye(5, dtype=np.float32)[:2], [m.input.name], rules="guided_backprob")


def test_methods_are_registered():
    for name in ("guided_backprop", "deconvolution", "guided_gradcam", "deeplift", "lrp"):
        assert name in ov.METHODS


class _Mixed(torch.nn.Module):
    """Conv-BN-ReLU-Conv(stride 2)-ReLU-GAP-Linear-Tanh-Linear-Sigmoid-Linear: ReLUs and smooth
    activations for DeepLIFT's rescale rule (modules, not functions, so that Captum finds them)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.c1, self.bn, self.r1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()
        self.c2, self.r2 = nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU()
        self.gap, self.l1, self.t = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 8), nn.Tanh()
        self.l2, self.s, self.l3 = nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 5)

    def forward(self, x):
        x = self.gap(self.r2(self.c2(self.r1(self.bn(self.c1(x))))))
        return self.l3(self.s(self.l2(self.t(self.l1(torch.flatten(x, 1))))))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    torch.manual_seed(0)
    net = _Mixed().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 2.0)
    m = export(net, tmp_path_factory.mktemp("mixed") / "mixed.onnx", threads=1)
    images = random_images(3, 16, seed=3)
    x = float64_inputs(m, images)
    return net.double(), m, images, x


@pytest.mark.parametrize("baseline", ["zero", 0])
def test_deeplift_equals_captum_and_sums_to_delta(mixed, baseline):
    net, m, images, x = mixed
    base = torch.zeros_like(x) if baseline == "zero" else torch.from_numpy(
        m.normalize(np.zeros((3, 16, 16, 3), np.float32)).astype(np.float64))
    want, delta = captum_attr.DeepLift(net).attribute(x, baselines=base, target=TARGETS,
                                                      return_convergence_delta=True)
    assert np.abs(delta.detach().numpy()).max() < 1e-10
    want = want.detach().numpy()
    got = ov.explain(m, images, method="deeplift", target=TARGETS, baseline=baseline,
                     reduce="signed")
    _close(_raw_nchw(got), want)
    gxi = captum_attr.InputXGradient(net).attribute(x, target=TARGETS).detach().numpy()
    assert np.abs(want - gxi).max() > 0.1 * np.abs(want).max()  # not gradient x input
    for e in got:  # summation-to-delta, in float32
        assert abs(e.extras["convergence_delta"]) <= 1e-5 * max(1.0, abs(e.score))


def test_deeplift_batch_size_and_refusals(mixed, tmp_path):
    _, m, images, _ = mixed
    one = ov.explain(m, images, method="deeplift", target=TARGETS, batch_size=1)
    all_ = ov.explain(m, images, method="deeplift", target=TARGETS, batch_size=3)
    for a, b in zip(one, all_):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, atol=1e-7)
    with pytest.raises(OptionError, match="baseline"):
        ov.explain(m, images, method="deeplift", baseline="blurry")
    x = m.normalize(m.to_pixels(images))
    with pytest.raises(OptionError, match="reference"):
        m.gradients(x, np.eye(5, dtype=np.float32)[:3], [m.input.name], rules="deeplift")
    nn = torch.nn
    soft = export(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 4),
                                nn.Softmax(dim=1), nn.Linear(4, 5)).eval(), tmp_path / "s.onnx", 8,
                  threads=1)
    with pytest.raises(ov.OnnxvizError, match="Softmax"):
        ov.explain(soft, np.zeros((8, 8, 3), np.uint8), method="deeplift")


def test_deeplift_max_pooling_equals_captum(tmp_path):
    """Captum's max-pooling rule, on a network where no other activation touches the pooling."""
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)).eval()
    m = export(net, tmp_path / "pool.onnx", threads=1)
    images = random_images(3, 16, seed=1)
    x = float64_inputs(m, images)
    want = captum_attr.DeepLift(net.double()).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method="deeplift", target=TARGETS, reduce="signed")
    _close(_raw_nchw(got), want)


def test_deeplift_relu_then_max_pooling_equals_the_rule(tmp_path):
    """ReLU right before MaxPool: Captum 0.9 gives the pooling's hook a stale gradient there
    (captum issue 1104, fixed upstream after 0.9), so the reference is the rule written out in
    torch float64: ReLU quotients, and the pooling's difference split at max(y, y') and routed
    to the input's and the reference's argmax."""
    import torch.nn.functional as F

    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 5)).eval()
    m = export(net, tmp_path / "relu_pool.onnx", threads=1)
    images = random_images(3, 16, seed=1)
    x = float64_inputs(m, images)
    net = net.double()
    with torch.no_grad():
        z, z0 = net[0](x), net[0](torch.zeros_like(x))
        a, a0 = F.relu(z), F.relu(z0).expand_as(z)
        p, at = F.max_pool2d(a, 2, return_indices=True)
        p0, at0 = F.max_pool2d(a0, 2, return_indices=True)
        g = net[4].weight[TARGETS].reshape(p.shape)
        top = torch.max(p, p0)
        back = (F.max_unpool2d(g * (top - p0), at, 2, output_size=a.shape[2:])
                + F.max_unpool2d(g * (p - top), at0, 2, output_size=a.shape[2:]))
        da, dz = a - a0, z - z0
        ma = torch.where(da.abs() < 1e-10, F.max_unpool2d(g, at, 2, output_size=a.shape[2:]),
                         back / da)
        mz = torch.where(dz.abs() < 1e-10, ma * (z > 0), ma * da / dz)
        want = (x * torch.nn.grad.conv2d_input(x.shape, net[0].weight, mz, padding=1)).numpy()
    got = ov.explain(m, images, method="deeplift", target=TARGETS, reduce="signed")
    _close(_raw_nchw(got), want)
    for e in got:
        assert abs(e.extras["convergence_delta"]) <= 1e-5 * max(1.0, abs(e.score))


class _Lrp(torch.nn.Module):
    """Conv-ReLU-MaxPool-Conv-ReLU-GAP-Linear-ReLU-Linear: only layers Captum's LRP has rules for
    (no BatchNorm: the exporter folds it into the Conv, which LRP does not treat alike)."""

    def __init__(self, bias=True):
        super().__init__()
        nn = torch.nn
        self.c1, self.r1, self.p = nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.r2 = nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU()
        self.gap, self.l1, self.r3 = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 8, bias=bias), nn.ReLU()
        self.l2 = nn.Linear(8, 5, bias=bias)

    def forward(self, x):
        x = self.gap(self.r2(self.c2(self.p(self.r1(self.c1(x))))))
        return self.l2(self.r3(self.l1(torch.flatten(x, 1))))


def _lrp_case(tmp_path, bias=True):
    """``_Lrp`` (seed 0) as float64 torch net, its ONNX export, three images, float64 inputs."""
    torch.manual_seed(0)
    net = _Lrp(bias).eval()
    m = export(net, tmp_path / "lrp.onnx", threads=1)
    images = random_images(3, 16, seed=1)
    return net.double(), m, images, float64_inputs(m, images)


@pytest.mark.parametrize("bias", [True, False])
def test_lrp_epsilon_equals_captum_and_conserves(tmp_path, bias):
    net, m, images, x = _lrp_case(tmp_path, bias)
    want = captum_attr.LRP(net).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method="lrp", target=TARGETS, reduce="signed", batch_size=2)
    _close(_raw_nchw(got), want)
    one = ov.explain(m, images, method="lrp", target=TARGETS, batch_size=1)
    for a, b in zip(got, one):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, atol=1e-9)
    if not bias:  # relevance is conserved: it sums to the explained score
        for e in got:
            assert abs(e.extras["conservation_gap"]) <= 1e-4 * abs(e.score)


@pytest.mark.parametrize("rule,peer", [("gamma", "GammaRule"), ("zplus", "Alpha1_Beta0_Rule")])
def test_lrp_weight_rules_equal_captum(tmp_path, rule, peer):
    """The same rule on every Conv2d and Linear in Captum (pooling keeps its epsilon rule)."""
    from captum.attr._utils import lrp_rules

    net, m, images, x = _lrp_case(tmp_path)
    for layer in (net.c1, net.c2, net.l1, net.l2):
        layer.rule = getattr(lrp_rules, peer)()
    want = captum_attr.LRP(net).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method="lrp", rule=rule, target=TARGETS, reduce="signed")
    _close(_raw_nchw(got), want)
    eps = ov.explain(m, images, method="lrp", target=TARGETS, reduce="signed")
    assert np.abs(_raw_nchw(eps) - want).max() > 0.1 * np.abs(want).max()  # a different rule
    with pytest.raises(OptionError, match="alphabeta"):  # zb: the first layer's rule only
        ov.explain(m, images, method="lrp", rule="zb")


@pytest.mark.parametrize("which", ["shapes_path", "shapes_keras_path"])
def test_bundled_cnns_nchw_and_keras_nhwc(request, repo_module, which):
    """The bundled shape classifiers (MaxPool, LeakyRelu; the Keras one channel-last): every
    method gives a finite map at the input size, and DeepLIFT sums to the score's difference."""
    m = ov.load(request.getfixturevalue(which), threads=1)
    images, labels, _ = repo_module("models.shapes").make_dataset(20, seed=123)
    rect = [images[i] for i in np.flatnonzero(labels == 0)[:2]]
    for method in ("guided_backprop", "deconvolution", "guided_gradcam", "deeplift", "lrp"):
        for e in ov.explain(m, rect, method=method, target=0):
            assert e.heatmap.shape == (64, 64) and e.raw.shape == (64, 64, 3)
            assert np.isfinite(e.heatmap).all() and np.abs(e.heatmap).max() > 0, method
            if method == "deeplift":
                delta = e.score - e.extras["baseline_score"]
                assert abs(e.extras["convergence_delta"]) <= 1e-5 * max(1.0, abs(delta))


def test_lrp_rules_per_layer_type_equal_captum(tmp_path):
    """Gamma on the convolutions, epsilon on the dense layers (as zennit's EpsilonGammaBox does
    inside the box), against Captum with the same rule per layer."""
    from captum.attr._utils import lrp_rules

    net, m, images, x = _lrp_case(tmp_path)
    net.c1.rule, net.c2.rule = lrp_rules.GammaRule(), lrp_rules.GammaRule()
    net.l1.rule, net.l2.rule = lrp_rules.EpsilonRule(), lrp_rules.EpsilonRule()
    want = captum_attr.LRP(net).attribute(x, target=TARGETS).detach().numpy()
    got = ov.explain(m, images, method="lrp", rule="gamma", dense_rule="epsilon",
                     target=TARGETS, reduce="signed")
    _close(_raw_nchw(got), want)
    same = ov.explain(m, images, method="lrp", rule="gamma", target=TARGETS, reduce="signed")
    assert np.abs(_raw_nchw(same) - want).max() > 1e-3 * np.abs(want).max()  # dense: gamma


def test_vit_methods_that_do_not_apply_say_why():
    """On a vision transformer (Softmax and products of two activations in attention) DeepLIFT
    and LRP are skipped by `all` with a reason, and refuse when named; the ReLU sets warn."""
    from pathlib import Path

    from onnxviz.explainers import get

    path = Path(ov.__file__).parent / "data" / "models" / "shapes_vit.onnx"
    if not path.exists():
        pytest.skip("onnxviz/data/models/shapes_vit.onnx not built")
    m = ov.load(path, threads=1)
    assert "Softmax" in get("deeplift").applies_to(m)
    assert "two activations" in get("lrp").applies_to(m)
    img = np.zeros((m.input.size[0], m.input.size[1], 3), np.uint8)
    for method, why in (("deeplift", "Softmax"), ("lrp", "attention")):
        with pytest.raises(ov.OnnxvizError, match=why):
            ov.explain(m, img, method=method)
    with pytest.warns(UserWarning, match="no Relu node"):
        ov.explain(m, img, method="guided_backprop")
