"""Torch models exported to ONNX for the tests that compare onnxviz with Captum and
pytorch-grad-cam on the torch original: the export, two small CNNs, images and model inputs.

torch is imported inside the functions, so that a test module importing this one still skips
(``pytest.importorskip("torch")``) where torch is missing.
"""

from __future__ import annotations

import numpy as np

import onnxviz as ov


def export_onnx(net, path, size=16, channels=3, output="logits"):
    """``net`` to ONNX at ``path`` with torch's TorchScript exporter: input ``x`` of shape
    (n, channels, *size) (``size`` an int for a square or (h, w)), output ``output``, batch
    dynamic, opset 17."""
    import torch

    hw = (size, size) if isinstance(size, int) else tuple(size)
    torch.onnx.export(net, torch.zeros(1, channels, *hw), str(path), input_names=["x"],
                      output_names=[output], dynamic_axes={"x": {0: "n"}, output: {0: "n"}},
                      opset_version=17, dynamo=False)


def export(net, path, size=16, channels=3, preprocess="unit", output="logits",
           **load_kw) -> ov.Model:
    """:func:`export_onnx`, then ``ov.load(path, preprocess=preprocess, **load_kw)``."""
    export_onnx(net, path, size, channels, output)
    return ov.load(path, preprocess=preprocess, **load_kw)


def _two_conv_cnn(activation, width):
    """Conv(3, 8)-act-Conv(8, width, stride 2)-act-GAP-Linear(width, 5), torch seed 0."""
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), activation[0](),
        nn.Conv2d(8, width, 3, stride=2, padding=1), activation[1](),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 5),
    ).eval()


def smooth_cnn():
    """A smooth CNN (Softplus, Tanh: no kinks), 3 -> 5 classes, seeded with torch seed 0."""
    import torch

    return _two_conv_cnn((torch.nn.Softplus, torch.nn.Tanh), 16)


def relu_cnn():
    """Conv-ReLU-Conv(stride 2)-ReLU-GAP-Linear, 3 -> 5 classes, seeded with torch seed 0; the
    ReLUs are modules "1" (8 channels at full size) and "3" (12 at half size)."""
    import torch

    return _two_conv_cnn((torch.nn.ReLU, torch.nn.ReLU), 12)


def random_images(n, size=16, seed=1):
    """``n`` random (size, size, 3) uint8 images from ``np.random.default_rng(seed)``, as a list."""
    return list(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def model_inputs(model, images):
    """The model's float32 input tensor for ``images``, as a torch tensor."""
    import torch

    return torch.from_numpy(model.normalize(np.stack(images)))


def float64_inputs(model, images):
    """The model's input tensor for ``images`` in float64 (for float64 torch references)."""
    import torch

    return torch.from_numpy(model.normalize(np.stack(images)).astype(np.float64))


def raw_nchw(explanations):
    """The explanations' raw (H, W, C) maps stacked as (N, C, H, W), as Captum returns them."""
    return np.stack([e.raw for e in explanations]).transpose(0, 3, 1, 2)


def assert_close(got, want, rel=1e-5):
    """Same shape, and no value further from ``want`` than ``rel`` of its largest magnitude."""
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= rel * np.abs(want).max()


def close_error(got, want, rel=1e-5):
    """:func:`assert_close` for a numpy or torch ``want``; returns the relative error."""
    want = want.detach().numpy() if hasattr(want, "detach") else want
    assert got.shape == want.shape
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= rel, err
    return err
