"""The architecture zoo: timm models as users export them, explained through ONNX Runtime.

Each architecture is built with random weights at a small input size (Swin and EfficientFormer
also narrower and shallower, with the same ops: see ARCHS), wrapped so that it also
returns one mid-depth activation (found with forward hooks: the middle of the modules whose output
is a 3-D or 4-D tensor), and exported with the TorchScript exporter (opset 17, symbolic batch) and,
for the architectures where the two exporters produce different graphs that matter (transformers,
hybrids, dynamo's ``as_strided`` views), with ``dynamo=True``. Exports are made once per session
under pytest's temporary folder.

For each export:
- ``ov.load`` works and ``forward`` equals torch's float32 logits;
- the input gradient and the gradient of the mid-depth activation equal torch.autograd in float64
  at batch 2 within 1e-4 x max|grad| (float64 and batch >= 2: torch 2.13's CPU autograd is wrong
  at batch 1 for eval BatchNorm2d then flatten/transpose);
- every method of ``ov.METHODS`` returns a finite map, or refuses with an OnnxvizError where the
  method does not apply to the architecture (CAM needs a global-average-pooling head).

The float32 reference problem: a pre-activation within float32 rounding of a ReLU/Clip/MaxPool
kink lands on the other side of it in float32 than in float64, and the two gradients then differ
by far more than rounding (torch's own float32 gradient differs from its float64 one by 0.3% of
max|grad| on inception_v3 at one random input). Such an input tests the reference, not onnxviz, so
the test draws inputs until torch float32 and torch float64 agree within 1e-5 (the framework alone
decides, onnxviz is not consulted) and then requires onnxviz to agree within 1e-4.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.errors import OnnxvizError

from tests.memory_helpers import free_memory

from .timm_shim import import_timm

torch = pytest.importorskip("torch")

TOL = 1e-4
#: (timm name, input size, create_model kwargs, also exported with dynamo)
ARCHS = [
    ("resnet18", 64, {}, False),
    ("mobilenetv3_small_050", 64, {}, False),
    ("efficientnet_b0", 64, {}, False),
    ("convnext_atto", 64, {}, True),
    ("regnetx_002", 64, {}, False),
    ("densenet121", 64, {}, False),
    ("inception_v3", 96, {}, False),
    ("ghostnet_100", 64, {}, False),
    ("repvgg_a0", 64, {}, False),
    ("dla46_c", 64, {}, False),
    ("hrnet_w18_small", 64, {}, False),
    ("vit_tiny_patch16_224", 64, {"img_size": 64}, True),
    ("deit_tiny_distilled_patch16_224", 64, {"img_size": 64}, False),
    # Swin-T's stages at half width with two blocks each (Swin-T: 96 wide, depths 2, 2, 6, 2): the
    # same ops (windowed attention, shifted every other block, patch merging); the 768 channels of
    # the last stage made Score-CAM and Ablation-CAM (one run per channel) 11 s each
    ("swin_tiny_patch4_window7_224", 64,
     {"img_size": 64, "window_size": 4, "embed_dim": 48, "depths": (2, 2, 2, 2)}, True),
    ("maxvit_nano_rw_256", 64, {"img_size": 64}, True),
    ("coatnet_nano_rw_224", 64, {"img_size": 64}, True),
    ("mobilevit_xxs", 64, {}, False),
    ("levit_128s", 64, {"img_size": 64}, True),
    # 224 px: its attention's position biases are fixed at 7 x 7 tokens. Quarter width, one block
    # per stage and two in the last (pool blocks, Flat, then the attention block: the same ops as
    # L1's 3, 2, 6, 4 blocks): the 448 channels of the last stage made Score-CAM and Ablation-CAM
    # (one run per channel at 224 px) 20 s each
    ("efficientformer_l1", 224, {"embed_dims": (12, 24, 56, 112), "depths": (1, 1, 1, 2)},
     False),
    ("poolformer_s12", 64, {}, False),
    ("mixer_s16_224", 64, {"img_size": 64}, False),
    ("fastvit_t8", 64, {}, False),
]
CASES = [pytest.param(a, ex, id=f"{a[0]}-{ex}")
         for a in ARCHS for ex in (("torchscript", "dynamo") if a[3] else ("torchscript",))]

#: Methods that may refuse an architecture, with the reason their error must give (a regex).
REFUSALS = {
    "cam": "global-average-pooling",
    # CNNs have no attention maps; Swin, MaxViT, CoAtNet, LeViT... attend in windows or stages
    "attention_rollout": "has no attention|attend over the whole token sequence",
    "attention_gradient": "has no attention|attend over the whole token sequence",
    # DeepLIFT's and LRP's rules stop at ops they have no rule for (attention's Softmax and
    # products of two activations, GELU in LayerNorm blocks): they say which op
    "deeplift": "not implemented|does not apply|no rule",
    "deeplift_shap": "not implemented|does not apply|no rule",
    "lrp": "not implemented|does not apply|no rule|computed from the image|comes from the image",
    # the detector methods refuse a classifier by name
    "drise": "explains the boxes of object detectors",
    "odam": "explains the boxes of object detectors",
}
#: Light settings so that every method runs in seconds on a 2-core machine.
LIGHT = {
    "lime": {"num_samples": 40, "segmentation": "slic", "n_segments": 16},
    "rise": {"num_masks": 40},
    "smoothgrad": {"samples": 3},
    "integrated_gradients": {"steps": 4},
    "kernelshap": {"num_samples": 40, "segmentation": "slic", "n_segments": 16},
    "gradient_shap": {"samples": 2},
    "deeplift_shap": {"samples": 2},
}


def light(method: str, size: int) -> dict:
    """LIGHT, plus occlusion with its patch a quarter of the image side: 4 x 4 runs at every
    size (196 at efficientformer_l1's 224 px with 16 px patches); the test checks that a map
    comes out."""
    if method == "occlusion":
        return {"patch": size // 4, "stride": size // 4}
    return LIGHT.get(method, {})


class _Tap(torch.nn.Module):
    """The timm model, returning its logits and one mid-depth activation."""

    def __init__(self, model, tap: str):
        super().__init__()
        self.model, self.tap, self._seen = model, tap, None
        dict(model.named_modules())[tap].register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        self._seen = out

    def forward(self, x):
        logits = self.model(x)
        return logits, self._seen


def _mid_module(model, x) -> str:
    """The middle one (in call order) of the modules that output one 3-D or 4-D tensor."""
    calls, hooks = [], []
    for name, mod in model.named_modules():
        if name and name.count(".") <= 2:
            hooks.append(mod.register_forward_hook(
                lambda m, a, o, name=name: calls.append(name)
                if isinstance(o, torch.Tensor) and o.ndim in (3, 4) and o.shape[0] == len(x)
                and o.requires_grad else None))
    with torch.enable_grad():
        model(x.requires_grad_(True))
    for h in hooks:
        h.remove()
    calls = list(dict.fromkeys(calls))
    return calls[len(calls) // 2]


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("timm_zoo")


_BUILT: dict = {}


def build(arch, exporter, folder):
    """(torch module, float64 twin, ONNX path, tap name), exported once per session; only the
    architecture under test stays in memory (its exports are adjacent in CASES)."""
    key = (arch[0], exporter)
    if key in _BUILT:
        return _BUILT[key]
    if any(k[0] != arch[0] for k in _BUILT):
        _BUILT.clear()
        for old in [k for k in _REFERENCE if k[0] != arch[0]]:
            del _REFERENCE[old]
        free_memory()
    timm = import_timm()
    name, size, kw, _ = arch
    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, num_classes=10, **kw).eval()
    x = torch.randn(2, 3, size, size)
    tap = _mid_module(net, x)
    wrapped = _Tap(net, tap).eval()
    twin = timm.create_model(name, pretrained=False, num_classes=10, **kw).eval()
    twin.load_state_dict(net.state_dict())
    twin = _Tap(twin.double(), tap).eval()
    path = folder / f"{name}-{exporter}.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(wrapped, (x,), path, dynamo=True, input_names=["x"],
                              output_names=["logits", "tap"],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
        else:
            torch.onnx.export(wrapped, (x,), path, dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["logits", "tap"],
                              dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}, "tap": {0: "n"}})
    _BUILT[key] = (wrapped, twin, path, tap)
    return _BUILT[key]


def _torch_grads(net, x, seed):
    x = x.clone().requires_grad_(True)
    logits, tap = net(x)
    tap.retain_grad()
    (logits * seed).sum().backward()
    return x.grad.double().numpy(), tap.grad.double().numpy()


_REFERENCE: dict = {}


def _well_conditioned_input(arch_name, wrapped, twin, size, seed):
    """An input at which torch's float32 and float64 input gradients agree within 1e-5 (cached
    per architecture: both exports of it share weights, input and reference)."""
    key = (arch_name, size)
    if key not in _REFERENCE:
        _REFERENCE[key] = _find_input(wrapped, twin, size, seed)
    return _REFERENCE[key]


def _find_input(wrapped, twin, size, seed):
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(2, 3, size, size, generator=gen)
        g32, _ = _torch_grads(wrapped, x, seed.float())
        g64, t64 = _torch_grads(twin, x.double(), seed)
        if np.abs(g32 - g64).max() <= 1e-5 * np.abs(g64).max():
            return x, g64, t64
    pytest.fail("no input where torch float32 and float64 agree: the reference is unusable")


@pytest.mark.slow
@pytest.mark.parametrize("arch,exporter", CASES)
def test_zoo(arch, exporter, zoo_dir):
    """Loads, predicts like torch, differentiates like torch float64, and explains."""
    wrapped, twin, path, tap = build(arch, exporter, zoo_dir)
    size = arch[1]
    m = ov.load(path, preprocess="imagenet", output="logits")
    seed = torch.zeros(2, 10, dtype=torch.float64)
    seed[0, 1], seed[1, 7] = 1.0, 1.0
    x, g64, t64 = _well_conditioned_input(arch[0], wrapped, twin, size, seed)

    logits = m.forward(x.numpy())
    with torch.no_grad():
        ref = wrapped(x)[0].numpy()
    assert np.abs(logits - ref).max() <= 1e-4 * max(np.abs(ref).max(), 1.0), "logits"

    gx = m.grad(x.numpy(), [1, 7])
    assert np.abs(gx - g64).max() <= TOL * np.abs(g64).max(), "input gradient"
    gt = m.grad(x.numpy(), [1, 7], wrt="tap")
    assert gt.shape == t64.shape
    assert np.abs(gt - t64).max() <= TOL * np.abs(t64).max(), f"gradient at {tap}"

    img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    for method in ov.METHODS:
        try:
            e = ov.explain(m, img, method=method, target=3, **light(method, size))
        except OnnxvizError as err:
            reason = REFUSALS.get(method)
            assert reason and re.search(reason, str(err)), f"{method}: {err}"
            continue
        assert e.heatmap.shape == (size, size), method
        assert np.isfinite(e.heatmap).all(), method
