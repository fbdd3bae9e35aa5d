"""Baselines given as Captum gives them to DeepLift, GradientShap and DeepLiftShap: a model-space
tensor or an image for ``deeplift``, a distribution of K baselines (a (K, ...) tensor, K images, a
list of files) for ``gradient_shap`` and ``deeplift_shap``; each against Captum on the torch CNN
the ONNX file was exported from (float64 references, batch of 3, max error <= 1e-5 of the largest
value), batch size, refusals, the command line and the server."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from torch_onnx import close_error as _close
from torch_onnx import export, float64_inputs, random_images
from torch_onnx import raw_nchw as _raw

import onnxviz as ov
from onnxviz.explainers.gradient_shap import draws

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
TARGETS = [0, 3, 4]
SIZE = 16
K = 4


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """A CNN with ReLU, MaxPool and Tanh (no ReLU right before the pooling: captum issue 1104),
    ImageNet preprocessing (the zero tensor is not the black image), its float64 torch original,
    3 images, their model inputs and a set of K tensors."""
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    ).eval()
    folder = tmp_path_factory.mktemp("shapbase")
    m = export(net, folder / "cnn.onnx", SIZE, preprocess="imagenet", threads=1)
    images = random_images(3, SIZE, seed=1)
    tensors = np.random.default_rng(2).normal(0, 1, (K, 3, SIZE, SIZE)).astype(np.float32)
    return copy.deepcopy(net).double(), m, images, float64_inputs(m, images), tensors, folder


def _t(a):
    return torch.from_numpy(np.asarray(a, np.float64))


def _inject(monkeypatch, noise, alpha, index, n):
    """Captum's draws (torch.normal, np.random.uniform, np.random.choice), image-major."""
    monkeypatch.setattr(torch, "normal",
                        lambda mean, std: std * torch.from_numpy(np.tile(noise, (n, 1, 1, 1))))
    monkeypatch.setattr(np.random, "uniform", lambda lo, hi, size: np.tile(alpha, n)[:size])
    monkeypatch.setattr(np.random, "choice", lambda k, size: np.tile(index, n)[:size])


def test_deeplift_tensor_and_image_baselines_equal_captum(cnn, tmp_path):
    from PIL import Image

    net, m, images, x, tensors, _ = cnn
    photo = np.random.default_rng(3).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "base.png")
    pixel_base = m.normalize(m.to_pixels(photo)).astype(np.float64)
    black = m.normalize(np.zeros((1, SIZE, SIZE, 3), np.uint8))
    cases = [("zero", np.zeros((1, 3, SIZE, SIZE))), ("black", black), (0, black),
             (tensors[1], tensors[1:2]), (tensors[1:2], tensors[1:2]), (photo, pixel_base),
             (str(tmp_path / "base.png"), pixel_base)]
    dl = captum_attr.DeepLift(net)
    for baseline, base in cases:
        got = ov.explain(m, images, method="deeplift", target=TARGETS, baseline=baseline,
                         reduce="signed")
        want, delta = dl.attribute(x, baselines=_t(base), target=TARGETS,
                                   return_convergence_delta=True)
        _close(_raw(got), want)
        for e, d in zip(got, delta.numpy()):
            assert abs(e.extras["convergence_delta"]) <= 1e-5 * max(1.0, abs(e.score))
            assert abs(d) <= 1e-6 * max(1.0, abs(e.score))


@pytest.mark.parametrize("mbi", [True, False])
def test_gradient_shap_set_equals_captum(cnn, monkeypatch, mbi):
    net, m, images, x, tensors, _ = cnn
    samples, stdev = 7, 0.1
    e = ov.explainers.get("gradient_shap")(m, samples=samples, stdev=stdev, baseline=tensors,
                                           seed=5, reduce="signed", batch_size=4,
                                           multiply_by_inputs=mbi)
    got = e.explain(images, target=TARGETS)
    noise, alpha, index = draws(5, samples, tuple(x.shape[1:]), K)
    assert len(set(index.tolist())) > 1  # the draws pick several baselines of the set
    _inject(monkeypatch, noise, alpha, index, len(images))
    want = captum_attr.GradientShap(net, multiply_by_inputs=mbi).attribute(
        x, baselines=_t(tensors), target=TARGETS, n_samples=samples, stdevs=stdev)
    _close(_raw(got), want)


@pytest.mark.parametrize("mbi", [True, False])
def test_deeplift_shap_set_equals_captum(cnn, mbi):
    net, m, images, x, tensors, _ = cnn
    got = ov.explain(m, images, method="deeplift_shap", baseline=tensors, target=TARGETS,
                     multiply_by_inputs=mbi, reduce="signed", batch_size=5)
    want = captum_attr.DeepLiftShap(net, multiply_by_inputs=mbi).attribute(
        x, baselines=_t(tensors), target=TARGETS)
    _close(_raw(got), want)
    scores = net(_t(tensors)).detach().numpy()[:, TARGETS].mean(axis=0)
    for e, s in zip(got, scores):  # summation to S(x) - mean_k S(b_k)
        assert e.extras["baseline_score"] == pytest.approx(s, rel=1e-5, abs=1e-6)
        assert abs(e.extras["convergence_delta"]) <= 1e-5 * max(1.0, abs(e.score - s))


def test_a_list_of_images_is_the_set_of_their_tensors(cnn, tmp_path):
    from PIL import Image

    _, m, images, _, tensors, _ = cnn
    rng = np.random.default_rng(4)
    pics = [rng.integers(0, 256, (SIZE + 4, SIZE, 3), dtype=np.uint8) for _ in range(3)]
    Image.fromarray(pics[2]).save(tmp_path / "b2.png")
    given = [pics[0], pics[1], str(tmp_path / "b2.png"), tensors[0], "zero"]
    same = np.concatenate([m.normalize(m.to_pixels(pics)), tensors[:1],
                           np.zeros((1, 3, SIZE, SIZE), np.float32)])
    square = np.stack([p[:SIZE] for p in pics])  # K pixel images as one (K, H, W, 3) array
    for method, kw in (("gradient_shap", {"samples": 6, "stdev": 0.05}), ("deeplift_shap", {})):
        a = ov.explain(m, images, method=method, baseline=given, target=TARGETS, **kw)
        b = ov.explain(m, images, method=method, baseline=same, target=TARGETS, **kw)
        np.testing.assert_allclose(_raw(a), _raw(b), rtol=1e-5, atol=1e-6 * np.abs(_raw(b)).max())
        c = ov.explain(m, images, method=method, baseline=square, target=TARGETS, **kw)
        d = ov.explain(m, images, method=method, baseline=list(square), target=TARGETS, **kw)
        np.testing.assert_allclose(_raw(c), _raw(d), rtol=1e-6, atol=1e-7 * np.abs(_raw(d)).max())


@pytest.mark.parametrize("method,kw", [("gradient_shap", {"samples": 5, "stdev": 0.1}),
                                       ("deeplift_shap", {}), ("deeplift", {})])
def test_results_do_not_depend_on_the_batch(cnn, method, kw):
    _, m, images, _, tensors, _ = cnn
    base = tensors[2] if method == "deeplift" else tensors
    runs = [ov.explain(m, images, method=method, baseline=base, target=TARGETS, batch_size=b,
                       **kw) for b in (1, 7)]
    one = ov.explain(m, images[1], method=method, baseline=base, target=TARGETS[1], **kw)
    for p, q in zip(*runs):
        np.testing.assert_allclose(p.raw, q.raw, rtol=1e-5, atol=1e-7 * np.abs(q.raw).max())
    np.testing.assert_allclose(one.raw, runs[0][1].raw, rtol=1e-5,
                               atol=1e-7 * np.abs(one.raw).max())


def test_bad_baselines_are_option_errors(cnn):
    _, m, _, _, tensors, _ = cnn
    nan = tensors.copy()
    nan[1, 0, 2, 2] = np.nan
    bad = [np.zeros((K, 3, 5, 5), np.float32), np.zeros((K, 3, SIZE), np.float32), nan,
           np.zeros((0, 3, SIZE, SIZE), np.float32), np.zeros((0, SIZE, SIZE, 3), np.uint8), [],
           [tensors[0], np.zeros((3, 5, 5), np.float32)], [tensors[0], "black"], [tensors[0], 3],
           ["no/such/file.png"], (0, 128), np.zeros((2,), np.float32), 300, -1, "white",
           np.full((2, SIZE, SIZE, 3), np.inf)]
    for method in ("gradient_shap", "deeplift_shap", "deeplift"):
        for value in bad + ([tensors, [tensors[0]], "uniform"] if method == "deeplift" else []):
            with pytest.raises(ov.OptionError, match="baseline"):
                ov.explainers.get(method)(m, baseline=value)
    # today's words and levels are still taken
    for method, words in (("gradient_shap", ("zero", "black", "uniform", 128, "64")),
                          ("deeplift_shap", ("zero", "black", "uniform", 128, "64")),
                          ("deeplift", ("zero", "black", 128, "64"))):
        for w in words:
            ov.explainers.get(method)(m, baseline=w)


def test_command_line_and_server_values(cnn, tmp_path):
    from onnxviz.explainers.options import method_kwargs
    from onnxviz.serve.limits import parse_caps
    from onnxviz.serve.params import job_of

    _, m, images, _, tensors, _ = cnn
    np.save(tmp_path / "set.npy", tensors)
    np.save(tmp_path / "one.npy", tensors[0])
    for method, name in (("gradient_shap", "set"), ("deeplift_shap", "set"), ("deeplift", "one")):
        kw = method_kwargs(method, {"baseline": str(tmp_path / f"{name}.npy")})
        np.testing.assert_array_equal(kw["baseline"], tensors if name == "set" else tensors[0])
        a = ov.explain(m, images[0], method=method, target=3, **kw)
        b = ov.explain(m, images[0], method=method, target=3,
                       baseline=tensors if name == "set" else tensors[0])
        np.testing.assert_array_equal(a.raw, b.raw)
        assert method_kwargs(method, {"baseline": "zero"})["baseline"] == "zero"
    from PIL import Image

    for i in range(2):
        Image.fromarray(images[i]).save(tmp_path / f"b{i}.png")
    files = f"{tmp_path / 'b0.png'},{tmp_path / 'b1.png'}"
    kw = method_kwargs("deeplift_shap", {"baseline": files})  # a comma list of files is a set
    assert kw["baseline"] == (str(tmp_path / "b0.png"), str(tmp_path / "b1.png"))
    a = ov.explain(m, images[2], method="deeplift_shap", target=3, **kw)
    b = ov.explain(m, images[2], method="deeplift_shap", target=3, baseline=images[:2])
    np.testing.assert_array_equal(a.raw, b.raw)
    with pytest.raises(ov.OptionError, match="one value"):
        method_kwargs("deeplift", {"baseline": files})
    caps = parse_caps([])
    for method in ("gradient_shap", "deeplift_shap", "deeplift"):
        assert job_of({"method": method, "baseline": "black"}, [method],
                      caps).kwargs["baseline"] == "black"
        assert job_of({"method": method, "baseline": 64}, [method], caps).kwargs["baseline"] == 64
        for value in (str(tmp_path / "set.npy"), "cat.png", ["zero", "cat.png"],
                      ["a.png", "b.png"]):
            with pytest.raises(ov.OptionError, match="file"):
                job_of({"method": method, "baseline": value}, [method], caps)
