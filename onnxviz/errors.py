"""Errors a person can act on.

Every user-facing failure in onnxviz raises a subclass of :class:`OnnxvizError`. The CLI prints
``str(error)`` on one line and exits with status 2; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OnnxvizError(Exception):
    """Base class of every error onnxviz raises on bad user input."""


class ModelError(OnnxvizError):
    """The model file is missing, empty, truncated, not ONNX, invalid, or unsafe to load."""


class UnsupportedOpError(ModelError):
    """An operator that ONNX Runtime cannot run, or that onnxviz cannot differentiate."""

    def __init__(self, op_type: str, node: str, supported: Iterable[str] = (), why: str = ""):
        self.op_type = op_type
        self.node = node
        self.supported = sorted(supported)
        msg = f"unsupported operator {op_type!r} at node {node!r}"
        if why:
            msg += f": {why}"
        if self.supported:
            msg += f" (supported: {', '.join(self.supported)})"
        super().__init__(msg)


class ImageError(OnnxvizError):
    """An image that cannot be read or has a shape/dtype onnxviz cannot turn into RGB."""


class LayerError(OnnxvizError):
    """An unknown layer name; the message lists the closest known names."""

    def __init__(self, name: str, known: Iterable[str], what: str = "layer"):
        known = list(known)
        self.name = name
        self.suggestions = close_matches(name, known)
        msg = f"unknown {what} {name!r}"
        if self.suggestions:
            msg += f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
        elif known:
            msg += f"; known: {', '.join(known[:10])}{' …' if len(known) > 10 else ''}"
        super().__init__(msg)


class TargetError(OnnxvizError):
    """A target class index out of range or a label that the model does not have."""


class OptionError(OnnxvizError):
    """A bad option value, an unknown method, or an input the method cannot handle."""


def close_matches(name: str, known: Iterable[str], n: int = 5) -> list[str]:
    """Known names closest to ``name``: substring hits first, then difflib's ratio."""
    known = list(dict.fromkeys(known))
    low = name.lower()
    subs = [k for k in known if low and low in k.lower()]
    fuzzy = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    return list(dict.fromkeys(subs[:n] + fuzzy))[:n]


class PrecisionError(ModelError):
    """A quantized or float16 model whose gradients onnxviz cannot define in the asked mode."""
