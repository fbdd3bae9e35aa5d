"""Score-CAM against the paper's procedure written out in torch on the torch original."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import onnxviz as ov

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


def repo_module(name: str):
    """Import a module of the repository's ``models/`` folder (not an installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


def test_scorecam_equals_the_paper_in_torch(effnet_path):
    """Wang et al. 2020, eq. 4-8 with the authors' masking of the input tensor, on the first
    block's output (16 channels at 112x112; the ONNX Conv there has the BatchNorm folded in)."""
    import cv2
    import skimage.data
    import torch.nn.functional as F

    build = repo_module("models.build_efficientnet")
    net = build.torch_model()
    pixels = cv2.resize(skimage.data.chelsea(), (224, 224), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(build.normalize(pixels[None]))
    saved = {}
    hook = net._blocks[0]._bn2.register_forward_hook(lambda m, i, o: saved.update(a=o))
    with torch.no_grad():
        target = int(net(x)[0].argmax())
        hook.remove()
        a = saved["a"]  # (1, 16, 112, 112)
        up = F.interpolate(a, size=(224, 224), mode="bilinear", align_corners=False)[0]
        lo = up.amin(dim=(1, 2), keepdim=True)
        hi = up.amax(dim=(1, 2), keepdim=True)
        masks = torch.where(hi > lo, (up - lo) / (hi - lo), torch.zeros_like(up))
        probs = torch.softmax(net(x * masks[:, None]), dim=1)[:, target]
        want = torch.relu((probs[:, None, None] * a[0]).sum(0)).numpy()

    m = ov.load(effnet_path)
    e = ov.explain(m, pixels, method="scorecam", layer="_blocks.0._project_conv", batch_size=8)
    assert e.target == target and e.raw.shape == (112, 112)
    assert np.abs(e.raw - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


def test_scorecam_masks_are_min_max_normalised():
    from onnxviz.explainers.scorecam import channel_masks

    acts = np.stack([np.arange(16, dtype=np.float32).reshape(4, 4), np.full((4, 4), 3, np.float32)])
    masks = channel_masks(acts, (8, 8))
    assert masks.shape == (2, 8, 8)
    assert masks[0].min() == 0 and masks[0].max() == 1
    assert not masks[1].any()  # a constant map masks everything out
