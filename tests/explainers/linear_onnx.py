"""A linear classifier as an inline ONNX graph: its perturbation explanations are known exactly.

``logits = flatten(x) @ W + b`` on raw pixels (preset ``raw``). In either layout, hiding a region
changes logit ``t`` by the sum of ``W[:, t] * (image - fill)`` over the hidden pixels.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H, W, K = 12, 10, 3


def weights(seed: int = 0) -> np.ndarray:
    """Per-pixel, per-channel weights (H, W, 3, K) in image order."""
    return np.random.default_rng(seed).normal(0, 0.01, (H, W, 3, K)).astype(np.float32)


def linear_model(layout: str, seed: int = 0) -> onnx.ModelProto:
    """The linear classifier with image-order weights ``weights(seed)``, input in ``layout``."""
    w = weights(seed)
    if layout == "NCHW":
        shape, flat = ["N", 3, H, W], w.transpose(2, 0, 1, 3).reshape(-1, K)
    else:
        shape, flat = ["N", H, W, 3], w.reshape(-1, K)
    b = np.arange(K, dtype=np.float32)
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "w"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mm", "b"], ["logits"], name="add"),
    ]
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", K])],
        [numpy_helper.from_array(np.ascontiguousarray(flat), "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="onnxviz.preprocess", value=json.dumps({"preset": "raw"}))
    onnx.checker.check_model(model)
    return model


def contribution(image: np.ndarray, fill, target: int, seed: int = 0) -> np.ndarray:
    """(H, W) change of logit ``target`` from each pixel: ``sum_c W[y, x, c, t] (image - fill)``."""
    diff = image.astype(np.float64) - np.broadcast_to(np.asarray(fill, np.float64), image.shape)
    return (weights(seed)[..., target].astype(np.float64) * diff).sum(-1)


def image(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3)).astype(np.uint8)
