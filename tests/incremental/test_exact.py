"""Incremental occlusion equals full recomputation, every position, border positions included.

The truth is the same occlusion run with ``incremental=False`` (every occluded image through the
unmodified graph); the maps must agree within 1e-5 x max|map| in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.incremental import Runner, plan_for
from onnxviz.perturb import patch_grid

from .nets import NETS

TOL = 1e-5


def check_exact(model, image, *, used=True, **options):
    """Run occlusion both ways; return the incremental run's extras."""
    full = ov.explain(model, image, method="occlusion", incremental=False, score="logit",
                      **options)
    inc = ov.explain(model, image, method="occlusion", incremental=True, score="logit", **options)
    info = inc.extras["incremental"]
    assert info["used"] is used, info
    scale = np.abs(full.raw).max()
    assert scale > 0
    np.testing.assert_allclose(inc.raw, full.raw, rtol=0, atol=TOL * scale)
    np.testing.assert_allclose(inc.heatmap, full.heatmap, rtol=0, atol=TOL * scale)
    assert inc.target == full.target and inc.score == pytest.approx(full.score, rel=1e-5)
    return info


def photo(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.mark.parametrize("act", ["Relu", "Tanh"])
@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("patch,stride,edges", [(5, 2, "truncate"), (4, 3, "center"),
                                                ((3, 7), (2, 5), "truncate")])
def test_inline_nets(name, act, patch, stride, edges):
    model = ov.load(NETS[name](act))
    info = check_exact(model, photo(model.input.size), patch=patch, stride=stride, edges=edges,
                       fill="mean", batch_size=7)
    assert info["prefix_ops"] >= 1


@pytest.mark.parametrize("share", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("name", sorted(NETS))
def test_every_cut_threshold_is_exact(name, share):
    """Cutting earlier or later moves work between crops and whole tensors, never the result;
    with no threshold (1.0) every op up to the global pooling runs on crops."""
    model = ov.load(NETS[name]("Relu"))
    rects, _ = patch_grid(model.input.size, 4, 3)
    plan = plan_for(model, rects, share)
    if share == 1.0:
        assert [c.split()[0] for c in plan.cut] == ["GlobalAveragePool"]
    if plan.reason is not None:  # the first op's window already covers more than ``share``
        assert "covers" in plan.reason and share < 1
        return
    runner = Runner(model, plan, rects)
    x0 = model.preprocess(photo(model.input.size))[0]
    base = np.full_like(x0, -1.5)
    runner.prepare(x0, base)
    got = runner.scores(0, len(rects))
    batch = np.repeat(x0[None], len(rects), 0)
    last = model.input.layout == "NHWC"
    for i, (y0, x_0, y1, x1) in enumerate(rects):
        if last:
            batch[i, y0:y1, x_0:x1] = -1.5
        else:
            batch[i, :, y0:y1, x_0:x1] = -1.5
    want = model.forward(batch)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL * np.abs(want).max())


def test_bundled_shapes_models(shapes_path, shapes_keras_path):
    for path in (shapes_path, shapes_keras_path):
        model = ov.load(path)
        check_exact(model, photo(model.input.size, 3), patch=9, stride=5, fill="gray")


def test_bundled_efficientnet_on_a_sample_of_positions(effnet_path):
    """EfficientNet-Lite0 at 224 px: TF-style Pad before each strided depthwise conv, ReLU6,
    inverted residuals; corner and edge positions included (patch 48, stride 44: 5 x 5)."""
    model = ov.load(effnet_path, threads=2)
    info = check_exact(model, photo(model.input.size, 4), patch=48, stride=44, batch_size=8)
    assert info["prefix_ops"] > 10


@pytest.mark.parametrize("name,used", [
    ("matlab_rul_cnn.onnx", True),
    ("tf2onnx_cifar_small.onnx", True),
    ("pytorch_cifar_resnet_2b.onnx", True),
    ("pytorch_mnist_convnet_avgpool.onnx", True),
    ("pytorch_mnist_convnet_maxpool.onnx", True),
])
def test_third_party_fixtures(fixtures_dir, name, used):
    model = ov.load(fixtures_dir / name, preprocess="unit")
    check_exact(model, photo(model.input.size, 5), used=used, patch=5, stride=3, fill="mean",
                batch_size=6)


def test_a_flattened_input_runs_in_full_with_the_reason(fixtures_dir):
    model = ov.load(fixtures_dir / "matlab_mnist_tansig.onnx")
    info = check_exact(model, photo((28, 28), 6), used=False, patch=7, stride=7, fill="black")
    assert info["reason"] == "the input is a flattened image"


def test_auto_and_off(shapes_path):
    model = ov.load(shapes_path)
    img = photo(model.input.size, 7)
    off = ov.explain(model, img, method="occlusion", patch=9, stride=5, incremental=False)
    assert off.extras["incremental"] == {"used": False, "reason": "incremental=False"}
    auto = ov.explain(model, img, method="occlusion", patch=9, stride=5)
    info = auto.extras["incremental"]
    assert info["used"] is (info["predicted_speedup"] >= 1.3)
    assert 0 < info["flops_skipped"] < 1 and info["frontier"]
    text = ov.explain(model, img, method="occlusion", patch=9, stride=5, incremental="on")
    assert text.extras["incremental"]["used"] is True
    with pytest.raises(ov.OptionError, match="incremental must be auto, true or false"):
        ov.explain(model, img, method="occlusion", incremental="sometimes")


def test_projective_threshold_is_approximate_and_recorded():
    """Below 1 the plan's windows shrink and the map moves away from the exact one (by an amount
    the benchmark reports); 1.0 is the exact run."""
    model = ov.load(NETS["residual"]("Relu"))
    img = photo(model.input.size, 9)
    exact = ov.explain(model, img, method="occlusion", patch=4, stride=2, score="logit",
                       incremental=True)
    approx = ov.explain(model, img, method="occlusion", patch=4, stride=2, score="logit",
                        projective_threshold=0.2)
    assert approx.extras["incremental"]["used"] and not approx.extras["incremental"]["exact"]
    assert exact.extras["incremental"]["exact"]
    assert approx.extras["incremental"]["flops_skipped"] > exact.extras["incremental"][
        "flops_skipped"]
    assert np.isfinite(approx.raw).all() and not np.allclose(approx.raw, exact.raw)
    assert np.corrcoef(approx.raw.ravel(), exact.raw.ravel())[0, 1] > 0.5
    with pytest.raises(ov.OptionError, match="incremental=False"):
        ov.explain(model, img, method="occlusion", projective_threshold=0.5, incremental=False)
    with pytest.raises(ov.OptionError, match="projective_threshold"):
        ov.explain(model, img, method="occlusion", projective_threshold=0)


def test_drilldown_runs_the_hottest_positions_exactly():
    """Krypton's adaptive drill-down: a coarse pass, then the hottest share at the fine stride;
    positions run in either pass are exact, the others interpolated; share 1 is the exact map."""
    from onnxviz.explainers.perturbation.incremental import coarse_positions

    model = ov.load(NETS["residual"]("Relu"))
    img = photo(model.input.size, 10)
    opts = dict(patch=4, stride=1, score="logit")
    exact = ov.explain(model, img, method="occlusion", incremental=False, **opts)
    for incremental in (True, False):
        e = ov.explain(model, img, method="occlusion", drilldown=0.25, incremental=incremental,
                       **opts)
        passes = e.extras["incremental"]["drilldown"]
        rows, cols, coarse = coarse_positions(e.extras["grid"])
        assert passes["coarse"] == len(coarse) and passes["fine"] == int(np.ceil(0.25 * e.raw.size))
        assert e.extras["forwards"] == passes["coarse"] + passes["fine"] + 2
        got, want = e.raw.ravel(), exact.raw.ravel()
        scale = np.abs(want).max()
        same = np.abs(got - want) <= TOL * scale
        assert same[coarse].all()
        assert same.sum() >= len(coarse) + passes["fine"]  # every position run is exact
        hot = np.argsort(-want)[: len(want) // 20]  # the hottest 5% of the exact map
        assert same[hot].mean() > 0.8
    full = ov.explain(model, img, method="occlusion", drilldown=1.0, **opts)
    np.testing.assert_allclose(full.raw, exact.raw, rtol=0, atol=TOL * scale)
