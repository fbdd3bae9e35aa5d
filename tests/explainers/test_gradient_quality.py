"""Every gradient and CAM method: localisation, sanity (Adebayo et al.), batch invariance, NHWC."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxviz as ov

GRADIENT = ["saliency", "smoothgrad", "integrated_gradients", "gradient_x_input"]
CAMS = ["cam", "gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam"]
FAST = {"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 6}}


@pytest.fixture(scope="module")
def shapes(repo_module):
    images, labels, boxes = repo_module("models.shapes").make_dataset(120, seed=123)
    return images, labels, boxes


@pytest.fixture(scope="module")
def shapes_cnn(shapes_path):
    return ov.load(shapes_path)


@pytest.fixture(scope="module")
def shapes_keras(shapes_keras_path):
    return ov.load(shapes_keras_path)


def test_every_method_is_registered():
    assert set(GRADIENT + CAMS) <= set(ov.METHODS)
    from onnxviz.explainers import get

    for name in GRADIENT + CAMS:
        cls = get(name)
        assert cls.family in ("gradient", "cam") and cls.summary
        assert "batch_size" in cls.options()


def rectangle_hits(model, shapes, method: str) -> tuple[int, int]:
    """On the dataset's rectangle images (class 0): how many heatmap argmaxes lie inside the
    rectangle, and how many images there are."""
    images, labels, boxes = shapes
    rect = np.flatnonzero(labels == 0)
    exps = ov.explain(model, [images[i] for i in rect], method=method, target=0)
    hits = 0
    for e, i in zip(exps, rect):
        y, x = np.unravel_index(np.argmax(e.heatmap), e.heatmap.shape)
        y0, x0, y1, x1 = boxes[i]
        hits += y0 <= y < y1 and x0 <= x < x1
    return hits, len(rect)


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_maxima_fall_inside_the_rectangle(shapes_cnn, shapes, method):
    """The heatmap's argmax (Grad-CAM upsampled, saliency per pixel) lies in the rectangle."""
    hits, n = rectangle_hits(shapes_cnn, shapes, method)
    assert hits >= 0.9 * n, f"{hits}/{n}"


def test_keras_gradcam_maxima_fall_inside_the_rectangle(shapes_keras, shapes):
    hits, n = rectangle_hits(shapes_keras, shapes, "gradcam")
    assert hits >= 0.9 * n, f"{hits}/{n}"


def _randomise_top(proto: onnx.ModelProto, n: int, seed: int = 0) -> onnx.ModelProto:
    """Cascading randomisation (Adebayo et al. 2018): the last ``n`` weight tensors re-drawn."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    rng = np.random.default_rng(seed)
    init = {t.name: t for t in out.graph.initializer}
    weights = [i for node in out.graph.node if node.op_type in ("Conv", "Gemm", "MatMul")
               for i in node.input[1:2] if i in init]
    for name in weights[-n:]:
        w = numpy_helper.to_array(init[name])
        new = rng.normal(0, w.std() + 1e-3, w.shape).astype(w.dtype)
        init[name].CopyFrom(numpy_helper.from_array(new, name))
    return out


def test_randomised_top_layers_change_the_maps(effnet_path):
    """Adebayo et al. 2018 (https://arxiv.org/abs/1810.03292): a method that explains the model
    must change when the model's top layers are re-drawn at random. Top layers: the last MBConv
    block (expand, depthwise, project convs) and the head (1x1 conv, dense): 5 weight tensors.
    (Re-drawing only the head's conv and dense layer leaves Grad-CAM an activation-energy map that
    still correlates with the original at 0.6-0.8, as measured; a deeper cut removes that.)"""
    from scipy.stats import spearmanr
    from skimage.data import chelsea

    m = ov.load(effnet_path)
    rnd = ov.load(_randomise_top(m.proto, 5))
    for method in ("gradcam", "saliency"):
        a = ov.explain(m, chelsea(), method=method, target=281).heatmap
        b = ov.explain(rnd, chelsea(), method=method, target=281).heatmap
        rho = 0.0 if not b.any() else spearmanr(a.ravel(), b.ravel())[0]
        assert rho < 0.5, (method, rho)


@pytest.mark.parametrize("method", GRADIENT + CAMS)
def test_batch_invariance(shapes_cnn, shapes, method):
    images, _, _ = shapes
    imgs = [images[0], images[1], images[2]]
    opts = FAST.get(method, {})
    together = ov.explain(shapes_cnn, imgs, method=method, target=[0, 1, None], batch_size=2, **opts)
    for img, t, e in zip(imgs, [0, 1, None], together):
        alone = ov.explain(shapes_cnn, img, method=method, target=t, batch_size=1, **opts)
        assert alone.target == e.target
        scale = max(1e-6, np.abs(alone.heatmap).max())
        assert np.abs(alone.heatmap - e.heatmap).max() <= 1e-5 * scale
        np.testing.assert_allclose(alone.raw, e.raw, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("method", GRADIENT + CAMS)
def test_keras_nhwc_model(shapes_keras, shapes, method):
    images, labels, _ = shapes
    assert shapes_keras.input.layout == "NHWC"
    # rectangle images: without a rectangle the model's features are all zero (it thresholds
    # white pixels first), so every map is rightly zero there
    rect = [images[i] for i in np.flatnonzero(labels == 0)[:2]]
    e = ov.explain(shapes_keras, rect, method=method, target=0, **FAST.get(method, {}))
    for x in e:
        assert x.heatmap.shape == (64, 64) and x.heatmap.dtype == np.float32
        assert np.isfinite(x.heatmap).all() and np.abs(x.heatmap).max() > 0
    if method in GRADIENT:
        assert e[0].raw.shape == (64, 64, 3)


def test_keras_cam_is_gradcam_times_positions(shapes_keras, shapes):
    """For a GAP -> dense head d(score)/dA = W / (h w): CAM and Grad-CAM agree up to h*w. This
    only holds when the channel axis of the Keras layer is found correctly."""
    images = [shapes[0][i] for i in np.flatnonzero(shapes[1] == 0)[:3]]
    cam = ov.explain(shapes_keras, images, method="cam", target=0)
    grad = ov.explain(shapes_keras, images, method="gradcam", target=0)
    for c, g in zip(cam, grad):
        hw = c.raw.size
        np.testing.assert_allclose(c.raw, hw * g.raw, rtol=1e-3, atol=1e-5 * c.raw.max())


def test_keras_saliency_matches_finite_differences(shapes_keras, shapes):
    """The NHWC input gradient against central differences of the score on a few input values."""
    img = shapes[0][np.flatnonzero(shapes[1] == 0)[0]]
    m = shapes_keras
    e = ov.explain(m, img, method="saliency", target=0)
    x = m.preprocess(img).astype(np.float64)
    rng = np.random.default_rng(0)
    for _ in range(4):
        i, j, c = rng.integers(0, 64), rng.integers(0, 64), rng.integers(0, 3)
        h = 1e-2
        xp, xm = x.copy(), x.copy()
        xp[0, i, j, c] += h
        xm[0, i, j, c] -= h
        fd = (m.forward(xp.astype(np.float32))[0, 0] - m.forward(xm.astype(np.float32))[0, 0]) / (2 * h)
        assert abs(e.raw[i, j, c] - fd) <= 2e-2 * np.abs(e.raw).max() + 1e-4


def test_every_method_runs_on_third_party_exports(fixtures_dir):
    """MATLAB (flattened input), tf2onnx (NHWC) and old PyTorch exports: every method gives a map
    at the image's size; CAM refuses heads without global average pooling, with its hint."""
    import warnings

    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    files = sorted(fixtures_dir.glob("*.onnx"))
    assert len(files) >= 6
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # preprocessing guessed for files without metadata
            m = ov.load(path)
        size = tuple(getattr(m.input, "flat_size", None) or m.input.size)
        for method in GRADIENT + CAMS:
            if method == "cam":
                with pytest.raises(ov.OptionError, match="use gradcam"):
                    ov.explain(m, img, method=method)
                continue
            e = ov.explain(m, [img, img], method=method, **FAST.get(method, {}))
            assert e[0].heatmap.shape == size, (path.name, method)
            assert np.isfinite(e[0].heatmap).all()
            np.testing.assert_allclose(e[0].heatmap, e[1].heatmap, rtol=1e-5, atol=1e-7)
