"""The cascading model-parameter randomisation test (Adebayo et al. 2018,
https://arxiv.org/abs/1810.03292, sec. 3.1) for the modified-gradient and SHAP methods, on a
randomly initialised VGG-like ReLU CNN exported here (5 Conv, 3 MaxPool, 2 Linear; 64 x 64) and
four skimage photographs. The bounds are the measured Spearman correlations (mean over the four
images, 8 stages = its 7 layers, seed 0; docs/methods.md, "Randomisation test") with a margin:
which methods lose the correlation (pass) and which keep it (fail) is what this test fixes."""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.metrics.randomisation import randomisation

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    from skimage.transform import resize

    nn = torch.nn
    torch.manual_seed(0)

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()]

    net = nn.Sequential(*block(3, 16), *block(16, 16), nn.MaxPool2d(2), *block(16, 32),
                        *block(32, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    path = tmp_path_factory.mktemp("vgg") / "vgg.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 64, 64), str(path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17, dynamo=False)
    m = ov.load(path, preprocess="imagenet", threads=1)
    images = [(resize(getattr(skimage_data, n)(), (64, 64), anti_aliasing=True) * 255).astype(np.uint8)
              for n in ("astronaut", "coffee", "chelsea", "rocket")]
    return m, images


def _rho(vgg, method, **options):
    """Mean Spearman correlation over the images, per stage (top layer first, all 7 last)."""
    m, images = vgg
    rows = []
    for e in ov.explain(m, images, method=method, **options):
        rows.append(randomisation(m, e, stages=8, seed=0).details["y"])
    return np.mean(rows, axis=0)


@pytest.mark.parametrize("method", ["saliency", "gradcam", "deeplift_shap"])
def test_methods_that_pass(vgg, method):
    """Measured: saliency 0.23 -> 0.11, Grad-CAM within +-0.21, DeepLIFT SHAP 0.29 -> 0.18."""
    y = _rho(vgg, method)
    assert len(y) == 7 and np.all(np.abs(y) < 0.35), y


def test_guided_backprop_fails_and_deconvolution_falls(vgg):
    """Guided backpropagation keeps the map while the dense layers and the top convolutions are
    random (measured 0.86, 0.82, 0.77, 0.68 over the first four stages; Adebayo et al. found the
    same), and loses it only with the layers near the input (0.27 with all 7). Deconvolution
    falls steadily (0.54 -> 0.08)."""
    y = _rho(vgg, "guided_backprop")
    assert np.all(y[:4] > 0.6) and y[-1] < 0.4, y
    y = _rho(vgg, "deconvolution")
    assert y[0] > 0.45 and np.all(y[4:] < 0.3) and np.all(np.diff(y) < 0), y


@pytest.mark.parametrize("method", ["deeplift", "lrp", "gradient_shap"])
def test_input_times_multiplier_methods_stay_correlated(vgg, method):
    """Attributions with the factor ``x - x'`` (zero baseline; LRP-epsilon on ReLUs is close to
    gradient x input) keep the image's structure: measured 0.52-0.53 with the top layer random,
    0.43-0.45 with every layer random. They fail the test here, as gradient x input does."""
    y = _rho(vgg, method)
    assert np.all(y > 0.38), y


def test_kernelshap_passes(vgg):
    """KernelSHAP reads only the model's outputs on perturbed images: measured (300 coalitions of
    16 SLIC superpixels) 0.01, 0.39, 0.17, -0.08, -0.05, 0.30, -0.00; mean 0.11."""
    y = _rho(vgg, "kernelshap", num_samples=300, segmentation="slic", n_segments=16)
    assert len(y) == 7 and np.all(np.abs(y) < 0.5) and abs(y.mean()) < 0.25, y
