"""The CAM options pytorch-grad-cam has (several layers, aug_smooth, eigen_smooth, Grad-CAM++'s
epsilon, Score-CAM's channel softmax) against pytorch-grad-cam 1.5.7 on the same small torch CNN
exported to ONNX; relu=False, the weighted channels and the input as a layer against the formulas
on torch autograd; the options through the CLI and the server's parameters."""

from __future__ import annotations

import numpy as np
import pytest
from torch_onnx import export, model_inputs, random_images, relu_cnn

import onnxviz as ov
from onnxviz.explainers.cam_options import peer_scaled

torch = pytest.importorskip("torch")
SIZE = 16
TARGETS = [1, 4, 0]
LAYERS = ["1", "3"]  # the two ReLUs: (8, 16, 16) and (12, 8, 8)


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    return tmp_path_factory.mktemp("cam_options") / "cnn.onnx"


@pytest.fixture(scope="module")
def cnn(cnn_file):
    from tests.zoo.timm_shim import register_torchvision_ops

    register_torchvision_ops()  # pytorch-grad-cam imports torchvision
    pytest.importorskip("pytorch_grad_cam")
    net = relu_cnn()
    m = export(net, cnn_file, SIZE, threads=1)
    images = random_images(3, SIZE, seed=3)
    return net, m, images, model_inputs(m, images)


def _peer(name):
    import pytorch_grad_cam as p

    return {"gradcam": p.GradCAM, "gradcam++": p.GradCAMPlusPlus, "hirescam": p.HiResCAM,
            "xgradcam": p.XGradCAM, "layercam": p.LayerCAM, "scorecam": p.ScoreCAM,
            "eigencam": p.EigenCAM, "eigengradcam": p.EigenGradCAM,
            "gradcam_elementwise": p.GradCAMElementWise, "ablationcam": p.AblationCAM}[name]


#: Options that make onnxviz's variant the peer's (Grad-CAM++'s epsilon, Score-CAM's weights).
AS_PEER = {"gradcam++": {"epsilon": 1e-6}, "scorecam": {"weights": "channel_softmax"}}


def _targets():
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return [ClassifierOutputTarget(t) for t in TARGETS]


def _peer_output(cnn, method, modules, **kw):
    net, _, _, x = cnn
    with _peer(method)(model=net, target_layers=[net[int(k)] for k in modules]) as cam:
        return cam(input_tensor=x, targets=_targets(), **kw)


def _torch_layer(net, module, x):
    """``module``'s output (the input when None) and d logit[target] / d it, from torch."""
    saved = {}
    if module is None:
        x = x.clone().requires_grad_(True)
        saved["a"] = x
    else:
        hook = module.register_forward_hook(lambda mod, i, o: saved.update(a=o))
    logits = net(x)
    if module is not None:
        hook.remove()
    (g,) = torch.autograd.grad(logits[range(len(TARGETS)), TARGETS].sum(), saved["a"])
    return saved["a"].detach().numpy(), g.numpy()


def _close(got, want, rel=1e-5):
    np.testing.assert_allclose(got, want, rtol=0, atol=rel * np.abs(want).max())


ALL = ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam", "eigencam",
       "eigengradcam", "gradcam_elementwise", "ablationcam"]


@pytest.mark.parametrize("method", ALL)
def test_several_layers_equal_the_peers_aggregation(cnn, method):
    """Each layer's map min-max scaled, upsampled, averaged and scaled: the peer's output."""
    _, m, images, _ = cnn
    want = _peer_output(cnn, method, LAYERS)
    got = ov.explain(m, images, method=method, layer=LAYERS, target=TARGETS,
                     **AS_PEER.get(method, {}))
    for e, w in zip(got, want):
        assert e.heatmap.shape == (SIZE, SIZE) and e.extras["layer"] == "1,3"
        np.testing.assert_allclose(e.heatmap, w, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(e.raw, e.heatmap)


def test_one_layer_in_a_list_is_that_layer_unnormalised(cnn):
    _, m, images, _ = cnn
    a = ov.explain(m, images, method="gradcam", layer=["3"], target=TARGETS)
    b = ov.explain(m, images, method="gradcam", layer="3", target=TARGETS)
    for e, f in zip(a, b):
        np.testing.assert_array_equal(e.heatmap, f.heatmap)
        assert e.raw.shape == (8, 8) and e.heatmap.max() != pytest.approx(1)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam", "ablationcam", "scorecam"])
def test_aug_smooth_equals_the_peer(cnn, method):
    """Not with Eigen-CAM: its sign is LAPACK's, and on a layer with a dead channel it flips with
    the 5e-8 that ONNX Runtime's activations differ from torch's (one of the six copies here)."""
    _, m, images, _ = cnn
    want = _peer_output(cnn, method, ["3"], aug_smooth=True)
    got = ov.explain(m, images, method=method, layer="3", target=TARGETS, aug_smooth=True,
                     **AS_PEER.get(method, {}))
    plain = ov.explain(m, images, method=method, layer="3", target=TARGETS)
    for e, p, w in zip(got, plain, want):
        np.testing.assert_allclose(e.heatmap, w, rtol=0, atol=1e-4)
        assert e.score == p.score  # the unaugmented image's score


def test_aug_smooth_with_several_layers_equals_the_peer(cnn):
    _, m, images, _ = cnn
    want = _peer_output(cnn, "gradcam", LAYERS, aug_smooth=True, eigen_smooth=True)
    got = ov.explain(m, images, method="gradcam", layer=LAYERS, target=TARGETS, aug_smooth=True,
                     eigen_smooth=True)
    for e, w in zip(got, want):
        np.testing.assert_allclose(e.heatmap, w, rtol=0, atol=1e-4)


GRADIENT = ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "gradcam_elementwise"]


@pytest.mark.parametrize("method", [*GRADIENT, "scorecam"])
def test_eigen_smooth_equals_the_peers_cam_image(cnn, method):
    """The first principal component of the weighted channels at the layer's resolution, against
    torch's activations and gradients through the peer's ``get_cam_image``, before the ReLU and
    up to the sign: the sign is LAPACK's, and where channels of w_k A_k are zero everywhere it
    flips with the 1e-8 that ONNX Runtime's values differ from torch's (Grad-CAM++'s first image
    here: 9 of 12 weights are 0). With the sign: Grad-CAM's."""
    net, m, images, x = cnn
    a, g = _torch_layer(net, net[3], x)
    peer = _peer(method)(model=net, target_layers=[net[3]])
    want = peer.get_cam_image(x, net[3], _targets(), a, g, eigen_smooth=True)
    got = ov.explain(m, images, method=method, layer="3", target=TARGETS, eigen_smooth=True,
                     relu=False, **AS_PEER.get(method, {}))
    for e, w in zip(got, want):
        sign = 1 if np.abs(e.raw - w).max() < np.abs(e.raw + w).max() else -1
        _close(sign * e.raw, w)
    if method == "gradcam":
        out = _peer_output(cnn, method, ["3"], eigen_smooth=True)
        clipped = ov.explain(m, images, method=method, layer="3", target=TARGETS,
                             eigen_smooth=True)
        for e, f, w in zip(clipped, got, out):
            np.testing.assert_array_equal(e.raw, np.maximum(f.raw, 0))
            np.testing.assert_allclose(peer_scaled([e.raw[None]], (SIZE, SIZE))[0], w, atol=1e-4)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "xgradcam", "scorecam"])
def test_relu_false_and_channel_maps(cnn, method):
    """Without the ReLU the map is the peer's ``get_cam_image`` as is (negative values kept; on
    the second Conv's output, before its ReLU); the weighted channels sum to it."""
    net, m, images, x = cnn
    a, g = _torch_layer(net, net[2], x)
    peer = _peer(method)(model=net, target_layers=[net[2]])
    want = peer.get_cam_image(x, net[2], _targets(), a, g, eigen_smooth=False)
    opts = AS_PEER.get(method, {})
    explainer = ov.explainers.get(method)(m, layer="2", relu=False, **opts)
    got = explainer.explain(images, target=TARGETS)
    channels = explainer.channel_maps(images, target=TARGETS)
    clipped = ov.explain(m, images, method=method, layer="2", target=TARGETS, **opts)
    assert (want < 0).any()
    for e, c, w, ch in zip(got, clipped, want, channels):
        _close(e.raw, w)
        assert ch.shape == (12, 8, 8)
        np.testing.assert_allclose(ch.sum(axis=0), e.raw, rtol=1e-5, atol=1e-6 * np.abs(w).max())
        np.testing.assert_allclose(c.raw, np.maximum(e.raw, 0), rtol=1e-6, atol=1e-7)
    if method == "gradcam":  # Grad-CAM's weights: the maps are mean(g_k) A_k
        _close(channels[0], g.mean(axis=(2, 3))[0][:, None, None] * a[0])


def test_gradcampp_epsilon_reproduces_the_peer_and_zero_is_the_paper(cnn):
    net, m, images, x = cnn
    a, g = _torch_layer(net, net[3], x)
    peer = _peer("gradcam++")(model=net, target_layers=[net[3]])
    want = np.maximum(peer.get_cam_image(x, net[3], _targets(), a, g), 0)
    got = ov.explain(m, images, method="gradcam++", layer="3", target=TARGETS, epsilon=1e-6)
    paper = ov.explain(m, images, method="gradcam++", layer="3", target=TARGETS)
    for e, p, w in zip(got, paper, want):
        _close(e.raw, w)
        assert np.abs(p.raw - w).max() > 0.01 * w.max()  # the epsilon matters on this model


def test_scorecam_channel_softmax_equals_the_peer(cnn):
    net, m, images, x = cnn
    a, _ = _torch_layer(net, net[3], x)
    peer = _peer("scorecam")(model=net, target_layers=[net[3]])
    want = np.maximum(peer.get_cam_image(x, net[3], _targets(), a, None), 0)
    got = ov.explain(m, images, method="scorecam", layer="3", target=TARGETS,
                     weights="channel_softmax")
    paper = ov.explain(m, images, method="scorecam", layer="3", target=TARGETS)
    for e, p, w in zip(got, paper, want):
        _close(e.raw, w)
        assert not np.allclose(p.raw, w)


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "scorecam"])
def test_input_as_layer(cnn, method):
    """The input tensor as the layer (Captum's LayerGradCam allows it): the peer's cam image on
    the input and d logit / d input, at the input's resolution."""
    net, m, images, x = cnn
    a, g = _torch_layer(net, None, x)
    peer = _peer(method)(model=net, target_layers=[net[0]])
    want = np.maximum(peer.get_cam_image(x, net[0], _targets(), a, g, eigen_smooth=False), 0)
    got = ov.explain(m, images, method=method, layer="x", target=TARGETS,
                     **AS_PEER.get(method, {}))
    for e, w in zip(got, want):
        assert e.raw.shape == (SIZE, SIZE) and e.extras["layer"] == "x"
        _close(e.raw, w)


def test_input_as_layer_channel_last():
    """A channel-last graph (test_cam's Keras-like NHWC graph): Grad-CAM on the input equals the
    formula on the analytic input gradient."""
    from test_cam import _nhwc_graph

    proto, w, b, wd = _nhwc_graph()
    m = ov.load(proto, preprocess="unit")
    img = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = img.astype(np.float64) / 255
    on = (x @ w.T + b) > 0  # (8, 8, 4)
    for t in (0, 1):
        grad = (on * wd[:, t]) @ w / 64  # d logit_t / d x, (8, 8, 3)
        want = np.maximum((x * grad.mean(axis=(0, 1))).sum(axis=-1), 0)
        e = ov.explain(m, img, method="gradcam", layer="x", target=t)
        _close(e.raw, want)


@pytest.mark.parametrize("method,opts", [
    ("gradcam", {"layer": LAYERS, "aug_smooth": True}),
    ("gradcam++", {"layer": "3", "eigen_smooth": True, "epsilon": 1e-6}),
    ("scorecam", {"layer": LAYERS, "weights": "channel_softmax", "relu": False}),
])
def test_batch_size_changes_nothing(cnn, method, opts):
    _, m, images, _ = cnn
    one = ov.explain(m, images, method=method, target=TARGETS, batch_size=1, **opts)
    all_ = ov.explain(m, images, method=method, target=TARGETS, batch_size=5, **opts)
    for a, b in zip(one, all_):
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opts,match", [
    ({"layer": []}, "layer must be"),
    ({"layer": ["3", 5]}, "layer must be"),
    ({"layer": 3}, "layer must be"),
    ({"relu": "no"}, "relu must be true or false"),
    ({"aug_smooth": 1}, "aug_smooth must be true or false"),
    ({"method": "gradcam++", "epsilon": -1.0}, "epsilon must be a number in"),
    ({"method": "gradcam++", "epsilon": "a"}, "epsilon must be"),
    ({"method": "scorecam", "weights": "softmax"}, "weights must be one of"),
])
def test_bad_values_are_refused(cnn, opts, match):
    _, m, images, _ = cnn
    opts = {"method": "gradcam", **opts}
    with pytest.raises(ov.OptionError, match=match):
        ov.explain(m, images[0], **opts)


def test_unknown_layer_in_a_list_and_channel_maps_of_several(cnn):
    _, m, images, _ = cnn
    with pytest.raises(ov.OptionError, match="channel_maps needs one layer"):
        ov.explainers.get("gradcam")(m, layer=LAYERS).channel_maps(images)
    with pytest.raises(ov.LayerError):
        ov.explain(m, images[0], method="gradcam", layer=["3", "nope"])


def test_cli_and_server_take_the_options(cnn, cnn_file, tmp_path, capsys):
    import json

    import cv2

    from onnxviz.cli import main
    from onnxviz.explainers.options import method_kwargs
    from onnxviz.serve.limits import DEFAULT_CAPS
    from onnxviz.serve.params import job_of

    kw = method_kwargs("gradcam++", {"layer": "1,3", "epsilon": "1e-6", "aug_smooth": True,
                                     "relu": False})
    assert kw == {"layer": ("1", "3"), "epsilon": 1e-6, "aug_smooth": True, "relu": False}
    assert method_kwargs("scorecam", {"weights": "channel_softmax"}) == {"weights": "channel_softmax"}
    job = job_of({"method": "gradcam", "layer": ["1", "3"], "eigen_smooth": True}, ["gradcam"],
                 DEFAULT_CAPS)
    assert job.kwargs == {"layer": ("1", "3"), "eigen_smooth": True}
    _, m, images, _ = cnn
    want = ov.explain(m, images[0], method="gradcam", target=1, **job.kwargs).heatmap
    cv2.imwrite(str(tmp_path / "a.png"), images[0][..., ::-1])
    code = main([str(a) for a in (
        "explain", cnn_file, tmp_path / "a.png", "-m", "gradcam", "--layer", "1,3",
        "--eigen-smooth", "--target", "1", "-o", tmp_path / "out", "--json", "--npy",
        "--preprocess", "unit")])
    out, err = capsys.readouterr()
    assert code == 0, err
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["params"]["layer"] == ["1", "3"] and rec["params"]["eigen_smooth"] is True
    got = np.load(rec["outputs"]["heatmap_npy"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
