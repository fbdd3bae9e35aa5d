"""Inline models and helpers of the metric tests: the linear classifier of the explainer tests,
its PyTorch twin (for Quantus and pytorch-grad-cam), and explanations made by hand."""

from __future__ import annotations

import sys

import numpy as np

from onnxviz.explainers.base import Explanation
from tests.explainers.linear_onnx import H, K, W, contribution, image, linear_model, weights

__all__ = ["H", "K", "W", "contribution", "image", "linear_model", "weights", "explanation",
           "torch_linear", "import_quantus"]


def explanation(heat, img, target: int, method: str = "saliency") -> Explanation:
    """An Explanation of ``img`` with the given map (what a method would return)."""
    return Explanation(heatmap=np.asarray(heat, np.float32), raw=None, target=int(target),
                       label=str(target), score=0.0, method=method, image=img)


def torch_linear(layout: str = "NCHW", seed: int = 0):
    """The linear classifier as a torch module taking the same (raw pixel) input tensor."""
    import torch

    w = weights(seed)
    flat = w.transpose(2, 0, 1, 3).reshape(-1, K) if layout == "NCHW" else w.reshape(-1, K)
    wt = torch.from_numpy(np.ascontiguousarray(flat))
    b = torch.arange(K, dtype=torch.float32)

    class Linear(torch.nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1).float() @ wt + b

    return Linear().eval()


def import_quantus():
    """``quantus`` without importing TensorFlow (10 s and 500 MB here): while no TensorFlow is
    loaded, it is hidden from Quantus's framework probe, at import and at each call."""
    import contextlib

    import pytest

    hide = "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None
    try:
        quantus = pytest.importorskip("quantus")
    finally:
        if hide:
            del sys.modules["tensorflow"]

    @contextlib.contextmanager
    def calling():
        hidden = "tensorflow" not in sys.modules
        if hidden:
            sys.modules["tensorflow"] = None
        try:
            yield
        finally:
            if hidden:
                del sys.modules["tensorflow"]

    quantus.calling = calling
    return quantus
