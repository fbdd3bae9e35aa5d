"""CAM family against independent truths: Captum on the torch original, the papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov

torch = pytest.importorskip("torch")
DOG = 207  # golden retriever: a class that is not the top one on the cat photo


@pytest.fixture(scope="module")
def torch_net(repo_module):
    """A fresh torch original with the head's ReLU6 as its own module (tests here modify it)."""
    return repo_module("models.build_efficientnet").torch_model_with_head_act()


@pytest.fixture(scope="module")
def torch_layer_grads(effnet, torch_net, pixels, repo_module):
    """Head activations A and dS/dA from torch autograd, for targets [top-1, DOG]."""
    build = repo_module("models.build_efficientnet")
    x = torch.from_numpy(build.normalize(np.stack(pixels)))
    saved = {}
    hook = torch_net._head_act.register_forward_hook(lambda m, i, o: saved.update(a=o))
    logits = torch_net(x)
    hook.remove()
    targets = [int(logits[0].argmax()), DOG]
    score = logits[0, targets[0]] + logits[1, targets[1]]
    (g,) = torch.autograd.grad(score, saved["a"])
    return saved["a"].detach().double().numpy(), g.double().numpy(), targets


def _relu_sum(w, a):
    w = w if w.ndim == 4 else w[:, :, None, None]
    return np.maximum((w * a).sum(axis=1), 0)


def _gradcampp_paper(a, g):
    """Chattopadhyay et al. 2018, eq. 19 (alphas) and eq. 9 (weights), written out."""
    num = g**2
    den = 2 * g**2 + a.sum(axis=(2, 3), keepdims=True) * g**3
    alpha = np.where(den != 0, num / np.where(den != 0, den, 1), 0)
    return (alpha * np.maximum(g, 0)).sum(axis=(2, 3))


FORMULAS = {
    "gradcam": lambda a, g: g.mean(axis=(2, 3)),
    "gradcam++": _gradcampp_paper,
    "hirescam": lambda a, g: g,
    "xgradcam": lambda a, g: (a * g).sum(axis=(2, 3)) / (a.sum(axis=(2, 3)) + 1e-7),
    "layercam": lambda a, g: np.maximum(g, 0),
}


@pytest.mark.parametrize("method", list(FORMULAS))
def test_variants_equal_their_formula_on_torch_autograd(effnet, pixels, torch_layer_grads, method):
    a, g, targets = torch_layer_grads
    want = _relu_sum(FORMULAS[method](a, g), a)
    got = ov.explain(effnet, pixels, method=method, target=[None, DOG])
    assert [e.target for e in got] == targets
    for e, w in zip(got, want):
        assert e.raw.shape == (7, 7) and e.heatmap.shape == (224, 224)
        assert np.abs(e.raw - w).max() <= 1e-4 * max(1.0, np.abs(w).max())
        assert e.extras["layer"] == "_swish_1"


def test_gradcam_equals_captum_layergradcam(effnet, torch_net, pixels, repo_module):
    """Captum's LayerGradCam on the same layers (the head's ReLU6 output, and the conv head's
    BatchNorm output = the ONNX Conv with BN folded), same targets, before upsampling."""
    from captum.attr import LayerGradCam

    build = repo_module("models.build_efficientnet")
    x = torch.from_numpy(build.normalize(np.stack(pixels)))
    for onnx_layer, module in (("_swish_1", torch_net._head_act), ("_conv_head", torch_net._bn1)):
        got = ov.explain(effnet, pixels, method="gradcam", layer=onnx_layer, target=[281, DOG])
        want = LayerGradCam(torch_net, module).attribute(x, target=[281, DOG], relu_attributions=True)
        want = want.detach().numpy()[:, 0]
        for e, w in zip(got, want):
            assert np.abs(e.raw - w).max() <= 1e-4, onnx_layer


def test_heatmap_is_bilinear_upsampling_of_raw(effnet, pixels):
    import torch.nn.functional as F

    e = ov.explain(effnet, pixels[0], method="gradcam")
    up = F.interpolate(torch.from_numpy(e.raw)[None, None], size=(224, 224), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    assert np.abs(e.heatmap - up).max() <= 1e-5 * max(1.0, e.raw.max())
    assert e.raw.min() >= 0


def test_cam_uses_the_dense_weights(effnet, torch_net, pixels, torch_layer_grads):
    a, _, targets = torch_layer_grads
    w = torch_net._fc.weight.detach().double().numpy()[targets]
    want = _relu_sum(w, a)
    got = ov.explain(effnet, pixels, method="cam", target=targets)
    for e, ref in zip(got, want):
        assert np.abs(e.raw - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    # for a GAP -> dense head, CAM = h*w * Grad-CAM (Selvaraju et al. 2017, sec. 3.1)
    grad = ov.explain(effnet, pixels, method="gradcam", target=targets)
    for c, gc in zip(got, grad):
        np.testing.assert_allclose(c.raw, 49 * gc.raw, rtol=1e-3, atol=1e-4 * c.raw.max())


def test_cam_refuses_other_layers_and_heads(effnet, fixtures_dir):
    with pytest.raises(ov.OptionError, match="global average pooling"):
        ov.explain(effnet, np.zeros((224, 224, 3), np.uint8), method="cam", layer="_conv_head")
    flat = ov.load(fixtures_dir / "tf2onnx_cifar_small.onnx", preprocess="unit")  # Flatten -> Dense, no pooling
    with pytest.raises(ov.OptionError, match="global-average-pooling"):
        ov.explain(flat, np.zeros((32, 32, 3), np.uint8), method="cam")


def test_unknown_layer_suggests_names(effnet):
    with pytest.raises(ov.LayerError, match="_conv_head"):
        ov.explain(effnet, np.zeros((224, 224, 3), np.uint8), method="gradcam", layer="_conv_hed")


def test_default_layer_is_last_spatial_layer_before_the_score(effnet, fixtures_dir):
    from onnxviz.model.tokens import default_layer

    assert default_layer(effnet).name == "_swish_1"  # not the 1x1 pooled output after it
    resnet = ov.load(fixtures_dir / "pytorch_cifar_resnet_2b.onnx", preprocess="unit")
    layer = default_layer(resnet)
    assert layer.shape[2:] != (1, 1) and len(layer.shape) == 4


def _nhwc_graph():
    """A Keras-like graph that keeps channel-last tensors between its ops: NHWC input, Transpose
    around a 1x1 Conv, Relu on the NHWC tensor, ReduceMean over axes 1, 2, then MatMul + Add."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 1, 1)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    wd = rng.normal(size=(4, 2)).astype(np.float32)
    bd = rng.normal(size=2).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["x_nchw", "w", "b"], ["conv"], name="conv"),
        helper.make_node("Transpose", ["conv"], ["conv_nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Relu", ["conv_nhwc"], ["act"], name="act"),
        helper.make_node("ReduceMean", ["act", "axes"], ["pooled"], keepdims=0, name="gap"),
        helper.make_node("MatMul", ["pooled", "wd"], ["mm"], name="dense"),
        helper.make_node("Add", ["mm", "bd"], ["logits"], name="bias"),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w, "w"), (b, "b"), (wd, "wd"), (bd, "bd"), (np.array([1, 2], np.int64), "axes"))]
    graph = helper.make_graph(
        nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 9
    onnx.checker.check_model(proto)
    return proto, w[:, :, 0, 0], b, wd


def test_channel_last_layers_and_reducemean_head():
    from onnxviz.model.layouts import layer_layout
    from onnxviz.model.tokens import default_layer

    proto, w, b, wd = _nhwc_graph()
    m = ov.load(proto, preprocess="unit")
    assert m.input.layout == "NHWC"
    layer = default_layer(m)
    assert layer.tensor == "act" and layer_layout(m, layer) == "NHWC"
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    acts = np.maximum(img.astype(np.float32) / 255 @ w.T + b, 0)  # (8, 8, 4), channel-last
    np.testing.assert_allclose(ov.activations(m, img, "act")["act"], acts.transpose(2, 0, 1),
                               rtol=1e-5, atol=1e-6)
    for target in (0, 1):
        cam = np.maximum(acts @ wd[:, target], 0)
        got = ov.explain(m, img, method="cam", target=target)
        np.testing.assert_allclose(got.raw, cam, rtol=1e-5, atol=1e-6)
        grad = ov.explain(m, img, method="gradcam", target=target)
        np.testing.assert_allclose(grad.raw, cam / 64, rtol=1e-5, atol=1e-7)
