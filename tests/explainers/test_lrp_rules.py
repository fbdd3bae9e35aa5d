"""LRP's options: epsilon and gamma against Captum's EpsilonRule and GammaRule with the same value;
the alpha-beta rule (beta > 0) and the first layer's z^B rule against the rules written out
contribution by contribution in torch float64 (Montavon et al. 2019, sec. 10.2); conservation;
batch size; refused values. The ONNX side runs float32, hence 1e-5 of the largest value."""

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
F = torch.nn.functional
TARGETS = [0, 3, 4]


class _Net(torch.nn.Module):
    """Conv-ReLU-MaxPool-Conv-ReLU-GAP-Linear-ReLU-Linear (layers Captum's LRP has rules for)."""

    def __init__(self, bias=True, hidden=8):
        super().__init__()
        nn = torch.nn
        self.c1, self.r1, self.p = nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.r2 = nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU()
        self.gap, self.l1, self.r3 = nn.AdaptiveAvgPool2d(1), nn.Linear(8, hidden, bias=bias), nn.ReLU()
        self.l2 = nn.Linear(hidden, 5, bias=bias)

    def forward(self, x):
        x = self.gap(self.r2(self.c2(self.p(self.r1(self.c1(x))))))
        return self.l2(self.r3(self.l1(torch.flatten(x, 1))))


def _setup(tmp_path, bias=True, hidden=8):
    torch.manual_seed(0)
    net = _Net(bias, hidden).eval()
    path = tmp_path / f"lrp{int(bias)}.onnx"
    m = export(net, path, preprocess="imagenet", threads=1)
    images = random_images(3, 16, seed=1)
    x = float64_inputs(m, images)
    return net.double().requires_grad_(False), m, images, x


def _stab(z, eps=1e-9):
    return z + eps * torch.where(z < 0, -1.0, 1.0).double()


def _contrib_rule(a, w, b, r, rule, beta=1.0, low=None, high=None):
    """Relevance of ``a`` (n, k, L) for a layer ``z[n, j, L] = sum_k w[j, k] a[n, k, L] + b[j]``
    given its output's relevance ``r`` (n, j, L), from the contributions ``c[n, j, k, L]``."""
    c = w[None, :, :, None] * a[:, None]
    if rule == "alphabeta":
        bp, bn = b.clamp(min=0)[None, :, None], b.clamp(max=0)[None, :, None]
        cp, cn = c.clamp(min=0), c.clamp(max=0)
        sp = (1 + beta) * r / _stab(cp.sum(2) + bp)
        sn = beta * r / _stab(cn.sum(2) + bn)
        return (cp * sp[:, :, None]).sum(1) - (cn * sn[:, :, None]).sum(1)
    if rule == "zb":
        c = c - w.clamp(min=0)[None, :, :, None] * low[:, None] - w.clamp(max=0)[None, :, :, None] * high[:, None]
        return (c * (r / _stab(c.sum(2)))[:, :, None]).sum(1)
    raise ValueError(rule)


def _reference(net, x, rule, first=None, beta=1.0, low=None, high=None):
    """LRP of ``_Net`` in torch float64: convolutions through unfold/fold, so that each rule is
    written on its contributions; pooling with the epsilon rule (1e-9) by autograd."""

    def conv(layer, a, r, rule):
        cols = F.unfold(a, 3, padding=1)
        lo = hi = None
        if rule == "zb":
            lo, hi = (F.unfold(v.expand_as(a), 3, padding=1) for v in (low, high))
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        b = layer.bias if layer.bias is not None else torch.zeros(w.shape[0]).double()
        rc = _contrib_rule(cols, w, b, r.flatten(2), rule, beta, lo, hi)
        return F.fold(rc, a.shape[2:], 3, padding=1)

    def dense(layer, a, r):
        b = layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0]).double()
        return _contrib_rule(a[:, :, None], layer.weight, b, r[:, :, None], rule, beta)[:, :, 0]

    def eps_rule(f, a, r):
        a = a.detach().requires_grad_(True)
        z = f(a)
        (g,) = torch.autograd.grad(z, a, r / _stab(z.detach()))
        return a.detach() * g

    with torch.no_grad():
        a1 = net.r1(net.c1(x))
        a2 = net.p(a1)
        a3 = net.r2(net.c2(a2))
        a4 = torch.flatten(net.gap(a3), 1)
        a5 = net.r3(net.l1(a4))
        out = net.l2(a5)
    r = torch.zeros_like(out)
    r[range(len(x)), TARGETS] = out[range(len(x)), TARGETS]
    r = dense(net.l1, a4, dense(net.l2, a5, r))
    r = eps_rule(net.gap, a3, r.reshape(-1, 8, 1, 1))
    r = eps_rule(net.p, a1, conv(net.c2, a2, r, rule))
    return conv(net.c1, x, r, first or rule).numpy()


def test_epsilon_and_gamma_values_equal_captum(tmp_path):
    from captum.attr._utils import lrp_rules

    net, m, images, x = _setup(tmp_path)
    for layer in (net.c1, net.p, net.c2, net.gap, net.l1, net.l2):
        layer.rule = lrp_rules.EpsilonRule(epsilon=0.05)
    want = captum_attr.LRP(net).attribute(x, target=TARGETS).detach().numpy()
    got = _raw(ov.explain(m, images, method="lrp", epsilon=0.05, target=TARGETS, reduce="signed"))
    _close(got, want)
    tiny = _raw(ov.explain(m, images, method="lrp", target=TARGETS, reduce="signed"))
    assert np.abs(tiny - want).max() > 1e-3 * np.abs(want).max()  # epsilon matters here
    for layer in (net.c1, net.c2, net.l1, net.l2):
        layer.rule = lrp_rules.GammaRule(gamma=1.0)  # at 1.5 one z' is near 0, and Captum's own
        # float32 run is 3e-3 off its float64 (measured): rounding, which this test cannot use
    for layer in (net.p, net.gap):
        layer.rule = lrp_rules.EpsilonRule()
    want = captum_attr.LRP(net).attribute(x, target=TARGETS).detach().numpy()
    got = _raw(ov.explain(m, images, method="lrp", rule="gamma", gamma=1.0, target=TARGETS,
                          reduce="signed"))
    _close(got, want)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_alpha_beta_equals_the_rule_and_conserves(tmp_path, beta):
    net, m, images, x = _setup(tmp_path)
    want = _reference(net, x, "alphabeta", beta=beta)
    got = ov.explain(m, images, method="lrp", rule="alphabeta", beta=beta, target=TARGETS,
                     reduce="signed")
    _close(_raw(got), want)
    zplus = _raw(ov.explain(m, images, method="lrp", rule="zplus", target=TARGETS, reduce="signed"))
    assert np.abs(zplus - want).max() > 0.1 * np.abs(want).max()
    # alpha - beta = 1: conserved where every unit has negative contributions (z- < 0); with 8
    # hidden units the top layer has none for these targets, hence 32
    net, m, images, x = _setup(tmp_path, bias=False, hidden=32)
    for e in ov.explain(m, images, method="lrp", rule="alphabeta", beta=beta, target=TARGETS):
        assert abs(e.extras["conservation_gap"]) <= 1e-4 * abs(e.score)


def test_first_layer_zb_equals_the_rule_and_conserves(tmp_path):
    from onnxviz.explainers.lrp import input_bounds

    net, m, images, x = _setup(tmp_path)
    low, high = (torch.from_numpy(v.astype(np.float64)) for v in input_bounds(m, "x"))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(low[0, :, 0, 0].numpy(), -mean / std, rtol=1e-6)
    np.testing.assert_allclose(high[0, :, 0, 0].numpy(), (1 - mean) / std, rtol=1e-6)
    want = _reference(net, x, "alphabeta", first="zb", low=low, high=high)
    got = ov.explain(m, images, method="lrp", rule="alphabeta", first_rule="zb", target=TARGETS,
                     reduce="signed", batch_size=2)
    _close(_raw(got), want)
    one = ov.explain(m, images, method="lrp", rule="alphabeta", first_rule="zb", target=TARGETS,
                     reduce="signed", batch_size=1)
    for a, b in zip(got, one):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, atol=1e-7 * np.abs(want).max())
    net, m, images, x = _setup(tmp_path, bias=False)
    for e in ov.explain(m, images, method="lrp", first_rule="zb", target=TARGETS):
        assert abs(e.extras["conservation_gap"]) <= 1e-4 * abs(e.score)
    # the first layer's rule only: the rest as the per-type rule
    plain = _raw(ov.explain(m, images, method="lrp", first_rule="epsilon", target=TARGETS,
                            reduce="signed"))
    _close(plain, _raw(ov.explain(m, images, method="lrp", target=TARGETS, reduce="signed")), 1e-6)


def test_refused_values_and_cli_flags(tmp_path):
    from onnxviz.explainers.options import option_table

    _, m, images, _ = _setup(tmp_path)
    for bad in ({"epsilon": 0.0}, {"gamma": -1.0}, {"beta": -0.5}, {"first_rule": "zbox"},
                {"rule": "zb"}, {"epsilon": float("nan")}):
        with pytest.raises(OptionError, match=next(iter(bad))):
            ov.explain(m, images[0], method="lrp", **bad)
    table = option_table(["lrp"])
    assert {"first_rule", "epsilon", "gamma", "beta"} <= set(table)


class _Residual(torch.nn.Module):
    """Bias-free Conv-ReLU, a residual block (Conv-ReLU6 added to its input, scaled by 0.5), GAP,
    a Linear on a 3-D tensor (exported as MatMul) and no bias anywhere: LRP must conserve."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.c1, self.c2 = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.fc = nn.Linear(6, 5, bias=False)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = 0.5 * (h + F.relu6(self.c2(h)))
        return self.fc(h.mean(dim=(2, 3))[:, None, :])[:, 0, :]


def test_residual_adds_split_relevance_and_conserve(tmp_path):
    """A residual Add splits relevance in proportion to its inputs, a scaling and ReLU6 pass it
    on: without biases the input relevance sums to the score (epsilon -> 0). Passing the
    relevance of a sum to both branches, as the gradient does, would count the skip twice."""
    torch.manual_seed(0)
    net = _Residual().eval()
    path = tmp_path / "residual.onnx"
    m = export(net, path, preprocess="unit", threads=1)
    ops = {n.op_type for n in m.proto.graph.node}
    assert {"Add", "Mul", "Clip", "MatMul"} <= ops, ops
    images = random_images(3, 16, seed=2)
    es = ov.explain(m, images, method="lrp", target=TARGETS, reduce="signed")
    for e in es:
        assert abs(float(e.raw.sum()) - e.score) <= 1e-4 * abs(e.score), (e.raw.sum(), e.score)
