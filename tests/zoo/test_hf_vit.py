"""A Hugging Face ``ViTForImageClassification`` built from a config, exported as users do.

Random weights (nothing can be downloaded), a small config (32 px, patch 8, 2 layers), both
attention implementations ("eager": an explicit Softmax; "sdpa": fused attention), exported with
the TorchScript exporter. Gradients of the input and of the first layer's output against torch's
float64 autograd at batch 2; every method of ``ov.METHODS`` runs or refuses with a clear error.
"""

from __future__ import annotations

import warnings

import re

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.errors import OnnxvizError

from .timm_shim import register_torchvision_ops

torch = pytest.importorskip("torch")
register_torchvision_ops()  # transformers imports torchvision
transformers = pytest.importorskip("transformers")

SIZE = 32


class _Wrap(torch.nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, x):
        out = self.vit(pixel_values=x, output_hidden_states=True)
        return out.logits, out.hidden_states[1]


def _build(attn: str):
    cfg = transformers.ViTConfig(image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64, num_labels=6,
                                 attn_implementation=attn)
    torch.manual_seed(0)
    return _Wrap(transformers.ViTForImageClassification(cfg).eval()).eval()


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def hf_vit(request, tmp_path_factory):
    net = _build(request.param)
    path = tmp_path_factory.mktemp("hf_vit") / f"vit-{request.param}.onnx"
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["logits", "hidden1"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}, "hidden1": {0: "n"}})
    return net, path


def test_hf_vit_gradients_match_torch_float64(hf_vit):
    net, path = hf_vit
    m = ov.load(path, preprocess="unit", output="logits")
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        np.testing.assert_allclose(m.forward(x.numpy()), net(x)[0].numpy(), rtol=1e-4, atol=1e-5)
    twin = _build("eager").double()
    twin.load_state_dict(net.state_dict())
    xd = x.double().requires_grad_(True)
    logits, hidden = twin(xd)
    hidden.retain_grad()
    (logits[0, 1] + logits[1, 4]).backward()
    gx = m.grad(x.numpy(), [1, 4])
    gh = m.grad(x.numpy(), [1, 4], wrt="hidden1")
    for got, ref in ((gx, xd.grad.numpy()), (gh, hidden.grad.numpy())):
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_hf_vit_every_method_runs(hf_vit):
    _, path = hf_vit
    m = ov.load(path, preprocess="unit", output="logits")
    img = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    light = {"occlusion": {"patch": 8, "stride": 8}, "lime": {"num_samples": 30,
             "segmentation": "slic", "n_segments": 8}, "rise": {"num_masks": 30},
             "smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 4},
             "kernelshap": {"num_samples": 30, "segmentation": "slic", "n_segments": 8},
             "gradient_shap": {"samples": 2}, "deeplift_shap": {"samples": 2}}
    for method in ov.METHODS:
        try:
            e = ov.explain(m, img, method=method, target=2, **light.get(method, {}))
        except OnnxvizError as err:
            assert (method == "cam" and "global-average-pooling" in str(err)) or (
                method in ("drise", "odam") and "boxes of object detectors" in str(err)) or (
                method in ("deeplift", "deeplift_shap", "lrp") and re.search(
                    "not implemented|does not apply|no rule|computed from the image|comes from the image", str(err))
            ), f"{method}: {err}"
            continue
        assert e.heatmap.shape == (SIZE, SIZE) and np.isfinite(e.heatmap).all(), method
