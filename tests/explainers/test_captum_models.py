"""Every gradient and modified-gradient method against Captum on Captum's own test models
(``captum.testing.helpers.basic_models``) with the inputs of Captum's test configurations
(``torch.arange(400).view(4, 1, 10, 10)``, ``1.0 * torch.arange(16).view(1, 1, 4, 4)``), exported
to ONNX here. onnxviz explains images, so each input is given as float gray pixels and the model's
preprocessing maps them back to Captum's values exactly (the float path keeps them unrounded).
References run in float64; onnxviz runs float32, hence 1e-5 of the largest value."""

from __future__ import annotations

import numpy as np
import pytest
from torch_onnx import export
from torch_onnx import raw_nchw as _raw

import onnxviz as ov

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
basic = pytest.importorskip("captum.testing.helpers.basic_models")


class _Logits(torch.nn.Module):
    """BasicModel_ConvNet without its final Softmax: onnxviz explains the score before the
    softmax, so Captum is given the same function (same modules, hooks included)."""

    def __init__(self, net):
        super().__init__()
        del net.softmax  # unused here; Captum's LRP would ask for a rule for it
        self.net = net

    def forward(self, x):
        n = self.net
        x = n.pool1(n.relu1(n.conv1(x)))
        x = n.pool2(n.relu2(n.conv2(x)))
        return n.fc2(n.relu3(n.fc1(x.view(-1, 4))))


def _case(tmp, name, net, x, scale):
    """(float64 torch net, onnxviz model, gray pixel images, float64 inputs): pixels = x / scale,
    preprocessing multiplies by ``scale`` (1 channel: the luminance of equal R, G, B)."""
    net = net.eval()
    m = export(net, tmp / f"{name}.onnx", tuple(x.shape[2:]), channels=1, output="y",
               preprocess={"scale": scale, "mean": 0, "std": 1}, threads=1)
    pixels = [np.asarray(img[0], np.float64) / scale for img in x.numpy()]
    got = m.preprocess(pixels)
    np.testing.assert_allclose(got, x.numpy(), rtol=1e-6, atol=1e-6)  # the inputs arrive exact
    return net.double(), m, pixels, x.double()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("captum_models")
    torch.manual_seed(0)
    one = basic.BasicModel_ConvNet_One_Conv()
    x_one = torch.stack([1.0 * torch.arange(16).view(1, 4, 4), 15.0 - torch.arange(16).view(1, 4, 4)])
    torch.manual_seed(1)
    conv = _Logits(basic.BasicModel_ConvNet())
    x_conv = torch.arange(400).view(4, 1, 10, 10).float()
    torch.manual_seed(2)
    dil = basic.BasicModel_ConvNetWithPaddingDilation()
    x_dil = 3 * torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(3)) - 0.5
    x_dil = x_dil.clamp(min=0)
    torch.manual_seed(1)
    soft = basic.BasicModel_ConvNet()  # as in Captum's configurations: the Softmax's output
    with torch.no_grad():  # its fc2 rows are all ones: every class would have the same gradient
        soft.fc2.weight.copy_(torch.randn(10, 8, generator=torch.Generator().manual_seed(4)))
    return {
        "softmax_convnet": _case(tmp, "softmax_convnet", soft, x_conv / 100, 1 / 32),
        "one_conv": _case(tmp, "one_conv", one, x_one, 1.0),
        "convnet": _case(tmp, "convnet", conv, x_conv, 2.0),
        "padding_dilation": _case(tmp, "padding_dilation", dil, x_dil, 1 / 64),
    }


TARGETS = {"one_conv": [0, 1], "convnet": [0, 3, 5, 9], "padding_dilation": [0, 1, 3]}

PEERS = {
    "saliency": (lambda net: captum_attr.Saliency(net), {"abs": False}, {}),
    "gradient_x_input": (lambda net: captum_attr.InputXGradient(net), {}, {}),
    "integrated_gradients": (lambda net: captum_attr.IntegratedGradients(net),
                             {"n_steps": 32, "method": "gausslegendre"},
                             {"steps": 32, "baseline": "black"}),
    "guided_backprop": (lambda net: captum_attr.GuidedBackprop(net), {}, {}),
    "deconvolution": (lambda net: captum_attr.Deconvolution(net), {}, {}),
    "deeplift": (lambda net: captum_attr.DeepLift(net), {}, {"baseline": "black"}),
}


@pytest.mark.parametrize("case", sorted(TARGETS))
@pytest.mark.parametrize("method", sorted(PEERS))
def test_method_equals_captum_on_captum_models(models, case, method):
    net, m, pixels, x = models[case]
    make, peer_args, options = PEERS[method]
    targets = TARGETS[case]
    want = make(net).attribute(x, target=targets, **peer_args).detach().numpy()
    got = _raw(ov.explain(m, pixels, method=method, target=targets, reduce="signed", **options))
    assert np.abs(want).max() > 0, "a reference of zeros tests nothing"
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("case", ["convnet", "padding_dilation"])
def test_lrp_equals_captum_on_captum_models(models, case):
    """Captum's LRP with its default rules (epsilon on Conv2d, Linear and MaxPool2d; ReLU
    passes relevance): onnxviz's ``lrp`` with the epsilon rule."""
    net, m, pixels, x = models[case]
    targets = TARGETS[case]
    want = captum_attr.LRP(net).attribute(x, target=targets).detach().numpy()
    got = _raw(ov.explain(m, pixels, method="lrp", target=targets, reduce="signed"))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_guided_gradcam_equals_captum_on_the_test_config(models):
    """Captum's "conv_layer_single_target" configuration: GuidedGradCam on layer conv2."""
    net, m, pixels, x = models["convnet"]
    peer = captum_attr.GuidedGradCam(net, net.net.conv2)
    want = peer.attribute(x, target=[1, 1, 1, 1], interpolate_mode="bilinear").detach().numpy()
    got = _raw(ov.explain(m, pixels, method="guided_gradcam", target=1, layer="conv2",
                          reduce="signed"))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("method", ["saliency", "gradient_x_input", "integrated_gradients"])
def test_probability_gradients_equal_captum_on_the_softmax_convnet(models, method):
    """Captum's configurations attribute BasicModel_ConvNet's Softmax output; onnxviz explains
    the same quantity with ``score="probability"`` (the model's logits are the Softmax input)."""
    net, m, pixels, x = models["softmax_convnet"]
    make, peer_args, options = PEERS[method]
    targets = [0, 3, 5, 9]
    want = make(net).attribute(x, target=targets, **peer_args).detach().numpy()
    got = ov.explain(m, pixels, method=method, target=targets, reduce="signed",
                     score="probability", **options)
    assert all(e.score_kind == "probability" for e in got)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(_raw(got), want, rtol=0, atol=1e-5 * np.abs(want).max())
