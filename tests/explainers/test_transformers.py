"""Vision transformers: token layers in the CAM family, the default layer, attention methods.

Checked against independent truths on the same weights: pytorch-grad-cam's Grad-CAM with its
documented ``reshape_transform`` (ViT, Swin), and attention rollout / gradient-weighted attention
written directly in torch from the attention maps (hooks on timm's ``attn_drop``, which receives
the softmax when ``fused_attn`` is off). timm models have random weights and small inputs; each is
exported once per session (both PyTorch exporters for the ViT) into pytest's temporary folder.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.errors import OptionError
from onnxviz.model.tokens import default_layer

VIT_SIZE, SWIN_SIZE, DEIT_SIZE = 96, 64, 64


def _export(tmp_path_factory, name: str, size: int, exporter: str, **kwargs):
    """(torch model in eval mode, onnxviz Model) of timm ``name`` with random weights."""
    torch = pytest.importorskip("torch")
    from tests.zoo.timm_shim import import_timm

    timm = import_timm()
    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, img_size=size, num_classes=4, **kwargs).eval()
    for mod in net.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = False  # the softmax becomes a module call the torch reference hooks
    path = tmp_path_factory.mktemp("transformers") / f"{name}_{exporter}.onnx"
    x = torch.randn(2, 3, size, size)
    if exporter == "dynamo":
        torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["x"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    else:
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return net, ov.load(path, preprocess="unit", threads=2)


@pytest.fixture(scope="module", params=["dynamo", "torchscript"])
def vit(request, tmp_path_factory):
    return _export(tmp_path_factory, "vit_tiny_patch16_224", VIT_SIZE, request.param)


@pytest.fixture(scope="module")
def swin(tmp_path_factory):
    return _export(tmp_path_factory, "swin_tiny_patch4_window7_224", SWIN_SIZE, "torchscript",
                   window_size=4)


@pytest.fixture(scope="module")
def deit(tmp_path_factory):
    return _export(tmp_path_factory, "deit_tiny_distilled_patch16_224", DEIT_SIZE, "torchscript")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (VIT_SIZE, VIT_SIZE, 3), dtype=np.uint8) for _ in range(2)]


def _resize(images, size):
    import cv2

    return [cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in images]


def _tensor(model, images):
    import torch

    return torch.from_numpy(model.preprocess(images))


def _grad_cam_reference(net, layer, x, targets, reshape):
    """pytorch-grad-cam's Grad-CAM (min-max normalised per image, upsampled to the input)."""
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=net, target_layers=[layer], reshape_transform=reshape) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])


def _normalised(raw, size):
    """pytorch-grad-cam's per-layer ``scale_cam_image`` (min-max normalise, bilinear resize), then
    its ``aggregate_multi_layers`` (min-max normalise again, at the input size)."""
    import cv2

    def minmax(a):
        a = a - a.min()
        return a / (1e-7 + a.max())

    return minmax(cv2.resize(minmax(raw).astype(np.float32), (size, size)))


def test_vit_token_layers_are_listed_with_their_grid(vit):
    _, m = vit
    tokens = {ly.name: ly for ly in m.layers() if ly.grid}
    grid = VIT_SIZE // 16
    assert tokens["blocks.11.norm1"].grid == (grid, grid) and tokens["blocks.11.norm1"].prefix == 1
    assert tokens["blocks.0"].shape[1:] == (grid * grid + 1, 192)
    assert not any(len(ly.shape) == 4 and ly.grid for ly in m.layers())


def test_vit_default_layer_is_the_last_blocks_first_norm(vit):
    _, m = vit
    layer = default_layer(m)
    assert layer.name == "blocks.11.norm1" and layer.op_type == "LayerNormalization"
    assert ov.explain(m, np.zeros((VIT_SIZE, VIT_SIZE, 3), np.uint8), method="gradcam", target=0) \
        .extras["layer"] == "blocks.11.norm1"


def test_attention_internal_tensor_is_refused(vit, images):
    _, m = vit
    from onnxviz.model.tokens import attention_softmaxes

    softmax = attention_softmaxes(m)[-1]
    with pytest.raises(OptionError, match="no place in the image"):
        ov.explain(m, images[0], method="gradcam", layer=softmax)
    queries = next(ly for ly in m.layers() if ly.name.startswith("blocks.11.attn") and len(ly.shape) == 4
                   and ly.shape[-1] == 64)
    with pytest.raises(OptionError, match="no place in the image"):
        ov.explain(m, images[0], method="layercam", layer=queries.name)


@pytest.mark.parametrize("layer", ["blocks.11.norm1", "blocks.8.norm1"])
def test_vit_gradcam_equals_pytorch_grad_cam(vit, images, layer):
    net, m = vit
    grid = VIT_SIZE // 16

    def reshape_transform(tensor, height=grid, width=grid):  # pytorch-grad-cam's ViT tutorial
        result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    targets = [1, 3]
    exps = ov.explain(m, images, method="gradcam", target=targets, layer=layer)
    want = _grad_cam_reference(net, net.get_submodule(layer), _tensor(m, images), targets, reshape_transform)
    for e, w in zip(exps, want):
        assert e.raw.shape == (grid, grid)
        np.testing.assert_allclose(_normalised(e.raw, VIT_SIZE), w, atol=2e-3)


def test_swin_channel_last_gradcam_equals_pytorch_grad_cam(swin):
    net, m = swin
    imgs = _resize([np.random.default_rng(1).integers(0, 256, (80, 80, 3), dtype=np.uint8)] * 2, SWIN_SIZE)
    imgs[1] = imgs[1][::-1].copy()

    def reshape_transform(tensor):  # timm's Swin keeps [N, H, W, C]: channels first, as documented
        return tensor.permute(0, 3, 1, 2)

    assert default_layer(m).name == "norm"
    for layer, grid in (("norm", SWIN_SIZE // 32), ("layers.2.blocks.1.norm1", SWIN_SIZE // 16)):
        exps = ov.explain(m, imgs, method="gradcam", target=[0, 2], layer=layer)
        want = _grad_cam_reference(net, net.get_submodule(layer), _tensor(m, imgs), [0, 2], reshape_transform)
        for e, w in zip(exps, want):
            assert e.raw.shape == (grid, grid)
            np.testing.assert_allclose(_normalised(e.raw, SWIN_SIZE), w, atol=2e-3)
    with pytest.raises(OptionError, match="windowed"):
        ov.explain(m, imgs[0], method="attention_rollout")


def _torch_attentions(net, x, target=None):
    """Attention maps (softmax outputs) of every block, and their gradients of score[target]."""
    store = []

    def hook(module, inputs, output):
        output.retain_grad()
        store.append(output)

    handles = [b.attn.attn_drop.register_forward_hook(hook) for b in net.blocks]
    try:
        logits = net(x)
        if target is not None:
            logits[np.arange(len(x)), target].sum().backward()
    finally:
        for h in handles:
            h.remove()
    return store


def _torch_rollout(attentions, head_fusion, discard_ratio, prefix):
    """Rollout written directly in torch (the common implementation, rows renormalised)."""
    import torch

    with torch.no_grad():
        n, _, t, _ = attentions[0].shape
        result = torch.eye(t, dtype=torch.float64).repeat(n, 1, 1)
        for a in attentions:
            fused = getattr(a.double(), head_fusion)(dim=1)
            fused = fused[0] if isinstance(fused, tuple) else fused
            flat = fused.reshape(n, -1)
            k = int(flat.shape[-1] * discard_ratio)
            for i in range(n):
                _, idx = flat[i].sort(stable=True)
                idx = idx[:k]
                flat[i, idx[idx != 0]] = 0
            a = fused + torch.eye(t, dtype=torch.float64)
            a = a / a.sum(dim=-1, keepdim=True)
            result = a @ result
        return result[:, 0, prefix:].numpy()


@pytest.mark.parametrize("head_fusion,discard_ratio", [("mean", 0.9), ("max", 0.0), ("min", 0.5)])
def test_vit_attention_rollout_equals_torch(vit, images, head_fusion, discard_ratio):
    net, m = vit
    exps = ov.explain(m, images, method="attention_rollout", head_fusion=head_fusion,
                      discard_ratio=discard_ratio)
    want = _torch_rollout(_torch_attentions(net, _tensor(m, images)), head_fusion, discard_ratio, 1)
    for e, w in zip(exps, want):
        grid = VIT_SIZE // 16
        assert e.raw.shape == (grid, grid) and e.heatmap.shape == (VIT_SIZE, VIT_SIZE)
        np.testing.assert_allclose(e.raw.ravel(), w, rtol=1e-3, atol=1e-5 * w.max())


def test_vit_attention_gradient_equals_torch(vit, images):
    net, m = vit
    targets = [2, 0]
    exps = ov.explain(m, images, method="attention_gradient", target=targets)
    attns = _torch_attentions(net, _tensor(m, images), targets)
    import torch

    t = attns[0].shape[-1]
    rel = torch.eye(t, dtype=torch.float64).repeat(len(images), 1, 1)
    for a in attns:
        cam = (a.grad.double() * a.detach().double()).clamp(min=0).mean(dim=1)
        rel = rel + cam @ rel
    want = rel[:, 0, 1:].numpy()
    for e, w in zip(exps, want):
        np.testing.assert_allclose(e.raw.ravel(), w, rtol=1e-3, atol=1e-4 * np.abs(w).max())


def test_deit_distillation_token_is_dropped(deit):
    net, m = deit
    grid = DEIT_SIZE // 16
    layer = default_layer(m)
    assert layer.name == "blocks.11.norm1" and layer.grid == (grid, grid) and layer.prefix == 2
    imgs = _resize([np.random.default_rng(2).integers(0, 256, (VIT_SIZE, VIT_SIZE, 3), dtype=np.uint8)] * 2,
                   DEIT_SIZE)
    imgs[1] = imgs[1][:, ::-1].copy()

    def reshape_transform(tensor, height=grid, width=grid):
        result = tensor[:, 2:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    exps = ov.explain(m, imgs, method="gradcam", target=[1, 1])
    want = _grad_cam_reference(net, net.blocks[-1].norm1, _tensor(m, imgs), [1, 1], reshape_transform)
    for e, w in zip(exps, want):
        np.testing.assert_allclose(_normalised(e.raw, DEIT_SIZE), w, atol=2e-3)
    roll = ov.explain(m, imgs, method="attention_rollout", discard_ratio=0.0)
    want = _torch_rollout(_torch_attentions(net, _tensor(m, imgs)), "mean", 0.0, 2)
    for e, w in zip(roll, want):
        np.testing.assert_allclose(e.raw.ravel(), w, rtol=1e-3)


def test_attention_methods_need_attention(shapes_path):
    m = ov.load(shapes_path)
    img = np.zeros((64, 64, 3), np.uint8)
    for method in ("attention_rollout", "attention_gradient"):
        with pytest.raises(OptionError, match="no attention"):
            ov.explain(m, img, method=method)


@pytest.mark.parametrize("options,match", [
    ({"head_fusion": "median"}, "head_fusion"),
    ({"discard_ratio": 1.0}, "discard_ratio"),
    ({"discard_ratio": "0.5"}, "discard_ratio"),
    ({"batch_size": 0}, "batch_size"),
])
def test_rollout_options_are_checked(options, match, shapes_path):
    m = ov.load(shapes_path)
    with pytest.raises(OptionError, match=match):
        ov.explain(m, np.zeros((64, 64, 3), np.uint8), method="attention_rollout", **options)


@pytest.fixture(scope="module")
def shapes_vit(repo_root):
    path = repo_root / "onnxviz" / "data" / "models" / "shapes_vit.onnx"
    if not path.exists():
        pytest.skip("onnxviz/data/models/shapes_vit.onnx not built yet: python -m models.train_shapes_vit")
    return ov.load(path)


@pytest.mark.parametrize("method", ["gradcam", "attention_rollout", "attention_gradient"])
def test_shapes_vit_localises_the_rectangle(shapes_vit, repo_module, method):
    """The trained ViT's maps peak inside the rectangle, the criterion of the CNN tests."""
    from tests.explainers.test_gradient_quality import rectangle_hits

    shapes = repo_module("models.shapes").make_dataset(120, seed=123)
    if method == "gradcam":
        assert default_layer(shapes_vit).name == "blocks.3.norm1"
    hits, n = rectangle_hits(shapes_vit, shapes, method)
    assert hits >= 0.9 * n, f"{hits}/{n}"
