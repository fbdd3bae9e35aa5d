"""Reverse-mode automatic differentiation of ONNX graphs into plain ONNX graphs.

    >>> from onnxviz.autodiff import gradient_model
    >>> g = gradient_model(proto, of="logits", wrt=["input"])
    >>> # run g.model in onnxruntime, feeding the seed (shaped like the logits) as g.seed

The backward graph uses only default-domain ONNX ops, so it runs on any ONNX Runtime build (a graph
built with ``cpu=True`` may fuse exact-GELU chains into ONNX Runtime's ``com.microsoft`` Gelu).
"""

from .backward import GradientModel, gradient_model
from .graph import reachable
from .registry import rule, supported_ops

__all__ = ["GradientModel", "gradient_model", "reachable", "rule", "supported_ops"]
