"""Captum's options on the gradient methods and occlusion, each against Captum on the torch model
the ONNX file was exported from (float64 references, batch of 3, max error <= 1e-5 of the largest
value): IG's baselines (zero tensor, model-space array, pixel image) and quadrature rules,
occlusion's baselines, NoiseTunnel's smoothgrad_sq and vargrad, gradients of the probability, and
multiply_by_inputs=False."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from linear_onnx import linear_model
from torch_onnx import close_error as _close
from torch_onnx import export, export_onnx, float64_inputs, random_images, smooth_cnn
from torch_onnx import raw_nchw as _raw

import onnxviz as ov
from onnxviz.explainers.gradient_shap import draws

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
TARGETS = [0, 3, 4]
SIZE = 16


@pytest.fixture(scope="module")
def smooth(tmp_path_factory):
    """A smooth CNN (Softplus, Tanh) with ImageNet preprocessing (so that the zero tensor is not
    the black image), its float64 torch original, 3 images and their model inputs."""
    net = smooth_cnn()
    folder = tmp_path_factory.mktemp("gopts")
    m = export(net, folder / "smooth.onnx", SIZE, preprocess="imagenet", threads=1)
    export_onnx(torch.nn.Sequential(net, torch.nn.Softmax(dim=1)), folder / "softmax.onnx", SIZE,
                output="prob")
    images = random_images(3, SIZE, seed=1)
    return copy.deepcopy(net).double(), m, images, float64_inputs(m, images), folder


def _probability(net):
    return lambda x: torch.softmax(net(x), dim=1)


# ---- Integrated Gradients: rules, baselines, multiply_by_inputs, score ------------------------

@pytest.mark.parametrize("rule", ["riemann_left", "riemann_right", "riemann_middle",
                                  "riemann_trapezoid", "gausslegendre"])
@pytest.mark.parametrize("mbi", [True, False])
def test_integrated_gradients_rules_equal_captum(smooth, rule, mbi):
    net, m, images, x, _ = smooth
    got = ov.explain(m, images, method="integrated_gradients", target=TARGETS, steps=7, rule=rule,
                     baseline="zero", multiply_by_inputs=mbi, batch_size=5)
    want = captum_attr.IntegratedGradients(net, multiply_by_inputs=mbi).attribute(
        x, target=TARGETS, n_steps=7, method=rule)  # Captum's default baseline: zeros
    _close(_raw(got), want)


def test_riemann_is_riemann_right_and_trapezoid_needs_two_steps(smooth):
    _, m, images, _, _ = smooth
    a = ov.explain(m, images[0], method="integrated_gradients", steps=5, rule="riemann")
    b = ov.explain(m, images[0], method="integrated_gradients", steps=5, rule="riemann_right")
    np.testing.assert_array_equal(a.raw, b.raw)
    with pytest.raises(ov.OptionError, match="steps >= 2"):
        ov.explain(m, images[0], method="integrated_gradients", steps=1, rule="riemann_trapezoid")


def test_integrated_gradients_baselines_equal_captum(smooth, tmp_path):
    net, m, images, x, _ = smooth
    ig = captum_attr.IntegratedGradients(net)
    tensor = np.random.default_rng(2).normal(0, 1, (3, SIZE, SIZE)).astype(np.float32)
    photo = np.random.default_rng(3).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "base.png")
    pixel_base = m.normalize(m.to_pixels(photo)).astype(np.float64)  # resized like an image
    cases = [("zero", np.zeros((1, 3, SIZE, SIZE))), (tensor, tensor[None]),
             (tensor[None], tensor[None]), (photo, pixel_base),
             (str(tmp_path / "base.png"), pixel_base)]
    for baseline, base in cases:
        got = ov.explain(m, images, method="integrated_gradients", target=TARGETS, steps=6,
                         baseline=baseline, reduce="signed")
        want, delta = ig.attribute(x, baselines=torch.from_numpy(np.asarray(base, np.float64)),
                                   target=TARGETS, n_steps=6, return_convergence_delta=True)
        _close(_raw(got), want)
        for e, d in zip(got, delta.numpy()):
            assert abs(e.extras["completeness_gap"] - d) <= 1e-5 * max(1.0, abs(e.score))
    zero = ov.explain(m, images[0], method="integrated_gradients", baseline="zero", steps=4)
    black = ov.explain(m, images[0], method="integrated_gradients", baseline="black", steps=4)
    assert np.abs(zero.raw - black.raw).max() > 1e-3 * np.abs(zero.raw).max()  # ImageNet: not 0


def test_nhwc_rule_float_array_is_a_tensor_uint8_is_pixels():
    m = ov.load(linear_model("NHWC"))  # input (N, 12, 10, 3): the shape of a 12x10 image
    ig = ov.explainers.get("integrated_gradients")
    arr = np.random.default_rng(0).uniform(0, 255, (12, 10, 3))
    px = np.zeros((1, 12, 10, 3), np.uint8)
    tensor = ig(m, baseline=arr.astype(np.float32)).baselines(px)
    np.testing.assert_array_equal(tensor[0], arr.astype(np.float32))
    pixels = ig(m, baseline=arr.astype(np.uint8)).baselines(px)
    np.testing.assert_allclose(pixels, m.normalize(arr.astype(np.uint8)[None]), rtol=1e-6)
    m2 = ov.load(linear_model("NCHW"))  # (H, W, 3) float is an image here: the tensor is (3, H, W)
    img = ig(m2, baseline=arr).baselines(px)
    np.testing.assert_allclose(img, m2.normalize(m2.to_pixels(arr)), rtol=1e-6)


# ---- occlusion baselines ------------------------------------------------------------------

@pytest.mark.parametrize("score", ["logit", "probability"])
def test_occlusion_baselines_equal_captum(smooth, score):
    net, m, images, x, _ = smooth
    tensor = np.random.default_rng(4).normal(0, 1, (1, 3, SIZE, SIZE)).astype(np.float32)
    photo = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    forward = _probability(net) if score == "probability" else net
    occ = captum_attr.Occlusion(forward)
    for fill, base in [("zero", None), (tensor, tensor), (photo, m.normalize(photo[None]))]:
        got = ov.explain(m, images, method="occlusion", patch=6, stride=4, fill=fill,
                         score=score, target=TARGETS, batch_size=7)
        kw = {} if base is None else {"baselines": torch.from_numpy(base.astype(np.float64))}
        with torch.no_grad():
            want = occ.attribute(x, sliding_window_shapes=(3, 6, 6), strides=(3, 4, 4),
                                 target=TARGETS, **kw)
        # a drop is the difference of two float32 forward runs: its error is the scores' rounding
        # (measured: 1.1e-7 on drops up to 0.01, logits up to 0.54), not a share of the drop
        err = np.abs(np.stack([e.heatmap for e in got]) - want.mean(1).numpy()).max()
        assert err <= 1e-6 * np.abs(forward(x).detach().numpy()).max(), err
        assert np.abs(want.numpy()).max() > 1e-3


# ---- SmoothGrad's NoiseTunnel types -------------------------------------------------------

@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("score", ["logit", "probability"])
def test_smoothgrad_nt_types_equal_captum(smooth, monkeypatch, nt_type, score):
    net, m, images, x, _ = smooth
    samples, noise = 6, 0.1
    got = ov.explain(m, images, method="smoothgrad", target=TARGETS, samples=samples, noise=noise,
                     nt_type=nt_type, score=score, seed=7, batch_size=4)
    x32 = m.normalize(np.stack(images))
    sigma = noise * (x32.max(axis=(1, 2, 3)) - x32.min(axis=(1, 2, 3)))
    eps = np.random.default_rng(7).standard_normal((samples, *x32.shape[1:]))
    ours = np.concatenate([s * eps for s in sigma])  # image-major, as Captum repeats its inputs
    monkeypatch.setattr(torch, "normal", lambda mean, std: torch.from_numpy(ours))
    forward = _probability(net) if score == "probability" else net
    want = captum_attr.NoiseTunnel(captum_attr.Saliency(forward)).attribute(
        x, nt_type=nt_type, nt_samples=samples, stdevs=1.0, target=TARGETS, abs=False)
    _close(_raw(got), want)


# ---- gradients of the probability ---------------------------------------------------------

def test_probability_gradients_equal_captum(smooth):
    net, m, images, x, _ = smooth
    prob = _probability(net)
    for method, captum_cls in [("saliency", captum_attr.Saliency),
                               ("gradient_x_input", captum_attr.InputXGradient)]:
        got = ov.explain(m, images, method=method, target=TARGETS, score="probability")
        kw = {"abs": False} if method == "saliency" else {}
        _close(_raw(got), captum_cls(prob).attribute(x, target=TARGETS, **kw))
        want_scores = prob(x).detach().numpy()[np.arange(3), TARGETS]
        np.testing.assert_allclose([e.score for e in got], want_scores, rtol=1e-5)
        assert all(e.score_kind == "probability" for e in got)
    got = ov.explain(m, images, method="integrated_gradients", target=TARGETS, steps=6,
                     baseline="zero", score="probability")
    want, delta = captum_attr.IntegratedGradients(prob).attribute(
        x, target=TARGETS, n_steps=6, return_convergence_delta=True)
    _close(_raw(got), want)
    for e, d in zip(got, delta.numpy()):
        assert abs(e.extras["completeness_gap"] - d) <= 1e-6


def test_a_softmax_model_and_a_regression_model(smooth, tmp_path):
    """On a model ending in Softmax, "logit" is the Softmax's input and "probability" its output;
    on one output without a Softmax, "probability" is the score itself."""
    net, _, images, x, folder = smooth
    m = ov.load(folder / "softmax.onnx", preprocess="imagenet", threads=1)
    assert m.prob_output is not None
    got = ov.explain(m, images, method="saliency", target=TARGETS, score="probability")
    _close(_raw(got), captum_attr.Saliency(_probability(net)).attribute(x, target=TARGETS,
                                                                       abs=False))
    got = ov.explain(m, images, method="saliency", target=TARGETS)
    _close(_raw(got), captum_attr.Saliency(net).attribute(x, target=TARGETS, abs=False))
    torch.manual_seed(1)
    reg = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * (SIZE - 2) ** 2, 1)).eval()
    r = export(reg, tmp_path / "reg.onnx", SIZE, preprocess="imagenet", threads=1)
    assert r.is_regression
    a = ov.explain(r, images, method="saliency", score="probability")
    b = ov.explain(r, images, method="saliency", score="logit")
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.raw, q.raw)
        assert p.score == q.score


def test_default_logit_results_are_unchanged(smooth):
    net, m, images, x, _ = smooth
    a = ov.explain(m, images, method="saliency", target=TARGETS)
    b = ov.explain(m, images, method="saliency", target=TARGETS, score="logit")
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.raw, q.raw)
    _close(_raw(a), captum_attr.Saliency(net).attribute(x, target=TARGETS, abs=False))


# ---- Gradient SHAP: multiply_by_inputs and score -------------------------------------------

@pytest.mark.parametrize("mbi,score", [(False, "logit"), (True, "probability")])
def test_gradient_shap_options_equal_captum(smooth, monkeypatch, mbi, score):
    net, m, images, x, _ = smooth
    samples, stdev = 5, 0.1
    e = ov.explainers.get("gradient_shap")(m, samples=samples, stdev=stdev, baseline="uniform",
                                           seed=3, multiply_by_inputs=mbi, score=score,
                                           reduce="signed", batch_size=4)
    got = e.explain(images, target=TARGETS)
    base = e.baselines(m.normalize(np.stack(images)), np.stack(images))
    noise, alpha, index = draws(3, samples, tuple(x.shape[1:]), len(base))
    n = len(images)
    monkeypatch.setattr(torch, "normal",
                        lambda mean, std: std * torch.from_numpy(np.tile(noise, (n, 1, 1, 1))))
    monkeypatch.setattr(np.random, "uniform", lambda lo, hi, size: np.tile(alpha, n)[:size])
    monkeypatch.setattr(np.random, "choice", lambda k, size: np.tile(index, n)[:size])
    forward = _probability(net) if score == "probability" else net
    want = captum_attr.GradientShap(forward, multiply_by_inputs=mbi).attribute(
        x, baselines=torch.from_numpy(base), target=TARGETS, n_samples=samples, stdevs=stdev)
    _close(_raw(got), want)


# ---- batch size, options, command line and server -----------------------------------------

@pytest.mark.parametrize("method,opts", [
    ("integrated_gradients", {"rule": "riemann_trapezoid", "steps": 5, "baseline": "zero",
                              "score": "probability", "multiply_by_inputs": False}),
    ("smoothgrad", {"nt_type": "vargrad", "samples": 4, "score": "probability"}),
    ("gradient_shap", {"multiply_by_inputs": False, "score": "probability", "stdev": 0.1}),
    ("occlusion", {"fill": "zero", "patch": 5, "stride": 3})])
def test_results_do_not_depend_on_the_batch(smooth, method, opts):
    _, m, images, _, _ = smooth
    a = ov.explain(m, images, method=method, target=TARGETS, batch_size=1, **opts)
    b = ov.explain(m, images, method=method, target=TARGETS, batch_size=7, **opts)
    one = ov.explain(m, images[2], method=method, target=TARGETS[2], batch_size=3, **opts)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p.raw, q.raw, rtol=1e-5, atol=1e-6 * np.abs(p.raw).max())
    np.testing.assert_allclose(one.raw, a[2].raw, rtol=1e-5, atol=1e-6 * np.abs(one.raw).max())


def test_bad_values_are_option_errors(smooth):
    m = smooth[1]
    bad = [("smoothgrad", {"nt_type": "var"}), ("saliency", {"score": "prob"}),
           ("gradient_x_input", {"score": 1}), ("integrated_gradients", {"rule": "simpson"}),
           ("integrated_gradients", {"multiply_by_inputs": "no"}),
           ("gradient_shap", {"multiply_by_inputs": 1}),
           ("integrated_gradients", {"baseline": np.zeros((3, 5, 5))}),
           ("integrated_gradients", {"baseline": "no/such/file.png"}),
           ("integrated_gradients", {"baseline": "white"}),
           ("occlusion", {"fill": np.zeros((2, 3, SIZE, SIZE))}),
           ("occlusion", {"fill": np.full((3, SIZE, SIZE), np.nan)})]
    for method, opts in bad:
        with pytest.raises(ov.OptionError):
            ov.explainers.get(method)(m, **opts)


def test_command_line_and_server_values(smooth, tmp_path, capsys):
    from onnxviz.explainers.options import method_kwargs
    from onnxviz.serve.limits import parse_caps
    from onnxviz.serve.params import job_of

    _, m, images, _, folder = smooth
    tensor = np.random.default_rng(6).normal(0, 1, (3, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "base.npy", tensor)
    kw = method_kwargs("integrated_gradients", {
        "baseline": str(tmp_path / "base.npy"), "rule": "riemann_middle",
        "multiply_by_inputs": False, "score": "probability", "steps": "4"})
    np.testing.assert_array_equal(kw["baseline"], tensor)
    assert kw["rule"] == "riemann_middle" and kw["multiply_by_inputs"] is False
    ov.explain(m, images[0], method="integrated_gradients", **kw)
    from PIL import Image

    from onnxviz.cli import main

    Image.fromarray(images[0]).save(tmp_path / "img.png")
    argv = ["explain", folder / "smooth.onnx", tmp_path / "img.png", "-m", "integrated_gradients",
            "--baseline", tmp_path / "base.npy", "--rule", "riemann_middle", "--steps", "4",
            "--no-multiply-by-inputs", "--score", "probability", "--preprocess", "imagenet",
            "--target", "3", "-o", tmp_path / "out", "--json", "--npy"]
    assert main([str(a) for a in argv]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["score_kind"] == "probability" and rec["params"]["rule"] == "riemann_middle"
    e = ov.explain(m, images[0], method="integrated_gradients", target=3, **kw)
    np.testing.assert_allclose(np.load(rec["outputs"]["heatmap_npy"]), e.heatmap, rtol=1e-6)
    kw = method_kwargs("occlusion", {"fill": str(tmp_path / "base.npy")})
    np.testing.assert_array_equal(kw["fill"], tensor)
    assert method_kwargs("smoothgrad", {"nt_type": "smoothgrad_sq"})["nt_type"] == "smoothgrad_sq"
    assert method_kwargs("integrated_gradients", {"baseline": "zero"})["baseline"] == "zero"
    assert method_kwargs("occlusion", {"fill": "0,0,0"})["fill"] == (0, 0, 0)
    caps = parse_caps([])
    job = job_of({"method": "integrated_gradients", "baseline": "zero", "rule": "riemann_left",
                  "score": "probability", "multiply_by_inputs": False},
                 ["integrated_gradients"], caps)
    assert job.kwargs["baseline"] == "zero" and job.kwargs["multiply_by_inputs"] is False
    assert job_of({"method": "smoothgrad", "nt_type": "vargrad"}, ["smoothgrad"],
                  caps).kwargs["nt_type"] == "vargrad"
    for value in (str(tmp_path / "base.npy"), "/etc/passwd", "cat.png"):
        with pytest.raises(ov.OptionError, match="file"):
            job_of({"method": "occlusion", "fill": value}, ["occlusion"], caps)
