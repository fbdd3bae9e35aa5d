"""Eigen-CAM, Eigen-Grad-CAM, Grad-CAM element-wise and Ablation-CAM against pytorch-grad-cam on
a small torch CNN exported to ONNX: the maps at the layer's resolution against the peer's own
``get_cam_image`` on torch's activations and gradients (before its normalisation), and the peer's
final (normalised, upsampled) output against ours put through the same normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from torch_onnx import export, model_inputs, random_images, relu_cnn

import onnxviz as ov

torch = pytest.importorskip("torch")
SIZE = 16
LAYER = "3"  # the second ReLU: (12, 8, 8)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    from tests.zoo.timm_shim import register_torchvision_ops

    register_torchvision_ops()  # pytorch-grad-cam imports torchvision
    pytest.importorskip("pytorch_grad_cam")
    net = relu_cnn()
    m = export(net, tmp_path_factory.mktemp("more_cams") / "cnn.onnx", SIZE, threads=1)
    images = random_images(3, SIZE, seed=3)
    return net, m, images, model_inputs(m, images)


TARGETS = [1, 4, 0]


def _peer(name):
    import pytorch_grad_cam

    return {"eigencam": pytorch_grad_cam.EigenCAM, "eigengradcam": pytorch_grad_cam.EigenGradCAM,
            "gradcam_elementwise": pytorch_grad_cam.GradCAMElementWise,
            "ablationcam": pytorch_grad_cam.AblationCAM}[name]


def _torch_layer(net, x, targets):
    """The layer's activations and d logit[target] / d activations from torch autograd."""
    saved = {}
    hook = net[3].register_forward_hook(lambda mod, i, o: saved.update(a=o))
    logits = net(x)
    hook.remove()
    (g,) = torch.autograd.grad(logits[range(len(targets)), targets].sum(), saved["a"])
    return saved["a"].detach().numpy(), g.numpy()


def _normalised(raw):
    """pytorch-grad-cam's scale_cam_image (min-max, resize to the input) twice, as for one layer."""
    import cv2

    def minmax(a):
        a = a - a.min()
        return a / (1e-7 + a.max())

    return minmax(cv2.resize(minmax(raw).astype(np.float32), (SIZE, SIZE)))


PEER_METHODS = ["eigencam", "eigengradcam", "gradcam_elementwise", "ablationcam"]


@pytest.mark.parametrize("method", PEER_METHODS)
def test_layer_maps_equal_the_peers_cam_image(cnn, method):
    """Same activations and gradients (torch's) through the peer's ``get_cam_image``: equal
    maps at the layer's resolution, in the same units, with the SVD's sign as the peer has it."""
    net, m, images, x = cnn
    a, g = _torch_layer(net, x, TARGETS)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    peer = _peer(method)(model=net, target_layers=[net[3]])
    targets = [ClassifierOutputTarget(t) for t in TARGETS]
    want = np.maximum(peer.get_cam_image(x, net[3], targets, a, g, eigen_smooth=False), 0)
    got = ov.explain(m, images, method=method, layer=LAYER, target=TARGETS)
    assert (want > 0).sum() >= 8  # maps, not zeros
    for e, w in zip(got, want):
        assert e.raw.shape == (8, 8) and e.heatmap.shape == (SIZE, SIZE)
        np.testing.assert_allclose(e.raw, w, rtol=0, atol=1e-5 * np.abs(w).max())


@pytest.mark.parametrize("method", PEER_METHODS)
def test_outputs_equal_pytorch_grad_cam(cnn, method):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net, m, images, x = cnn
    with _peer(method)(model=net, target_layers=[net[3]]) as cam:
        want = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in TARGETS])
    got = ov.explain(m, images, method=method, layer=LAYER, target=TARGETS)
    for e, w in zip(got, want):
        np.testing.assert_allclose(_normalised(e.raw), w, rtol=0, atol=1e-4)


def test_eigencam_ignores_the_target_and_eigengradcam_does_not(cnn):
    _, m, images, _ = cnn
    a, b = (ov.explain(m, images[0], method="eigencam", layer=LAYER, target=t) for t in (0, 3))
    np.testing.assert_array_equal(a.raw, b.raw)
    a, b = (ov.explain(m, images[0], method="eigengradcam", layer=LAYER, target=t) for t in (0, 3))
    assert not np.allclose(a.raw, b.raw)


@pytest.mark.parametrize("method", PEER_METHODS)
def test_batch_size_changes_nothing(cnn, method):
    _, m, images, _ = cnn
    one = ov.explain(m, images, method=method, layer=LAYER, target=TARGETS, batch_size=1)
    all_ = ov.explain(m, images, method=method, layer=LAYER, target=TARGETS, batch_size=5)
    for a, b in zip(one, all_):
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-6, atol=1e-7)


def test_constant_layer_gives_an_empty_map():
    from onnxviz.explainers.cam_more import first_component

    maps = np.ones((2, 4, 3, 3), np.float32)
    assert not first_component(maps).any()


def test_reduced_svd_has_the_full_svds_first_row():
    """The peer asks numpy for the full U; the reduced SVD used here gives the same first row of
    V^T, sign included (tall and wide matrices, as layers with more positions or channels)."""
    rng = np.random.default_rng(0)
    for shape in [(64, 12), (16, 40), (49, 49)] * 10:
        x = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
        x -= x.mean(axis=0)
        full = np.linalg.svd(x, full_matrices=True)[2][0]
        reduced = np.linalg.svd(x, full_matrices=False)[2][0]
        np.testing.assert_allclose(reduced, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("target", [0, 1])
def test_ablationcam_on_a_channel_last_layer_and_linear_head(target):
    """Keras-like NHWC graph (Relu on a channel-last tensor, ReduceMean, MatMul + Add): zeroing
    channel k lowers the logit by mean(A_k) * W[k, t] exactly, so w_k = mean(A_k) W[k, t] / y."""
    from test_cam import _nhwc_graph

    proto, w, b, wd = _nhwc_graph()
    m = ov.load(proto, preprocess="unit")
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    acts = np.maximum(img.astype(np.float64) / 255 @ w.T + b, 0)  # (8, 8, 4)
    e = ov.explain(m, img, method="ablationcam", target=target, batch_size=3)
    weights = acts.mean(axis=(0, 1)) * wd[:, target] / e.score
    want = np.maximum(acts @ weights, 0)
    assert want.max() > 0
    np.testing.assert_allclose(e.raw, want, rtol=1e-4, atol=1e-5 * want.max())


@pytest.fixture(scope="module")
def bn_cnn(tmp_path_factory):
    """Conv-ReLU-BatchNorm-Conv-ReLU-GAP-Linear: the BatchNorm follows a ReLU, so the export keeps
    it as its own node (a BatchNorm after a Conv is folded into the Conv's bias)."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.BatchNorm2d(6),
        torch.nn.Conv2d(6, 10, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(10, 4),
    ).eval()
    with torch.no_grad():
        bn = net[2]
        bn.running_mean.uniform_(0, 0.5)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    m = export(net, tmp_path_factory.mktemp("fullgrad") / "bn_cnn.onnx", SIZE, threads=1)
    assert [n.op_type for n in m.proto.graph.node].count("BatchNormalization") == 1
    return net, m


@pytest.mark.parametrize("which", ["cnn", "bn_cnn"])
def test_fullgrad_equals_pytorch_grad_cam(cnn, bn_cnn, which):
    """pytorch-grad-cam's FullGrad (every Conv2d and BatchNorm2d bias) min-max normalises the sum
    at the end; onnxviz's heatmap is that sum, so it is normalised the same way here."""
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    net, m = (cnn[0], cnn[1]) if which == "cnn" else bn_cnn
    images = cnn[2]
    x = torch.from_numpy(m.normalize(np.stack(images)))
    with FullGrad(model=net, target_layers=[]) as cam:
        want = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in (1, 3, 0)])
    got = ov.explain(m, images, method="fullgrad", target=[1, 3, 0])
    assert got[0].extras["bias_layers"] == (2 if which == "cnn" else 3)
    for e, w in zip(got, want):
        ours = e.heatmap - e.heatmap.min()
        ours = ours / (1e-7 + ours.max())
        assert e.heatmap.shape == (SIZE, SIZE) and w.max() > 0.5
        np.testing.assert_allclose(ours, w, rtol=0, atol=1e-4)
    one = ov.explain(m, images, method="fullgrad", target=[1, 3, 0], batch_size=1)
    for a, b in zip(one, got):
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-6, atol=1e-6)


def test_fullgrad_bias_of_batchnorm(bn_cnn):
    """psi scales each channel's map by itself, so the bias values only count through being
    non-zero in the maps: check them directly against torch's BatchNorm2d."""
    from onnxviz.explainers.cam_more import bias_layers

    net, m = bn_cnn
    biases = [b for _, b in bias_layers(m)]
    bn = net[2]
    want = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    np.testing.assert_allclose(biases[1], want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(biases[0], net[0].bias.detach().numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(biases[2], net[3].bias.detach().numpy(), rtol=0, atol=0)


MINE = ["eigencam", "eigengradcam", "gradcam_elementwise", "ablationcam", "fullgrad"]


def test_keras_nhwc_model_and_third_party_exports(shapes_keras_path, repo_module, fixtures_dir):
    """A channel-last Keras model (rectangle images: without one its features are all zero), and
    every third-party export (MATLAB's flattened input, tf2onnx, old PyTorch): a finite map at
    the image's size from every method here."""
    import warnings

    images, labels, _ = repo_module("models.shapes").make_dataset(40, seed=123)
    keras = ov.load(shapes_keras_path)
    rect = [images[i] for i in np.flatnonzero(labels == 0)[:2]]
    for method in MINE:
        for e in ov.explain(keras, rect, method=method, target=0):
            assert e.heatmap.shape == (64, 64) and np.isfinite(e.heatmap).all()
            assert np.abs(e.heatmap).max() > 0, method
    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    for path in sorted(fixtures_dir.glob("*.onnx")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # preprocessing guessed for files without metadata
            m = ov.load(path)
        size = tuple(getattr(m.input, "flat_size", None) or m.input.size)
        for method in MINE:
            e = ov.explain(m, img, method=method, batch_size=64)
            assert e.heatmap.shape == size and np.isfinite(e.heatmap).all(), (path.name, method)


@pytest.mark.parametrize("method,tensors", [("eigencam", 5), ("eigengradcam", 5),
                                            ("gradcam_elementwise", 20)])
def test_randomised_top_layers_change_the_maps(effnet, method, tensors):
    """Adebayo et al. 2018, as tests/explainers/test_gradient_quality.py runs it: the last
    ``tensors`` weight tensors of EfficientNet-Lite0 re-drawn, Spearman rho < 0.5 between the
    maps. Measured (chelsea, class 281): eigencam 0.26, eigengradcam 0.38, ablationcam 0.14
    (not run here: 1,280 channels, a minute); gradcam_elementwise 0.67 with 5 tensors, 0.77 with
    10, -0.01 with 20; fullgrad 0.78, 0.79, 0.75 with 5, 10, 20: it fails the test."""
    from scipy.stats import spearmanr
    from skimage.data import chelsea
    from test_gradient_quality import _randomise_top

    rnd = ov.load(_randomise_top(effnet.proto, tensors), threads=2)
    a = ov.explain(effnet, chelsea(), method=method, target=281).heatmap
    b = ov.explain(rnd, chelsea(), method=method, target=281).heatmap
    rho = 0.0 if not b.any() else spearmanr(a.ravel(), b.ravel())[0]
    assert rho < 0.5, rho
