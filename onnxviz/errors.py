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


class ResourceError(OnnxvizError):
    """Work that would exceed a limit (memory budget, pixels, file size); the message has the
    numbers and the setting that changes the limit (:mod:`onnxviz.limits`)."""


class ExecutionError(OnnxvizError):
    """ONNX Runtime failed while running the model (a shape valid only at another batch size, a
    run stopped by a time limit, an allocation that failed)."""


class NonFiniteWarning(UserWarning):
    """A model output or a map has NaN or infinite values; the result says so
    (``Explanation.extras["nonfinite"]``) and is not drawn as if valid."""


class BlankMapWarning(UserWarning):
    """A map is constant (all zero, most often a gradient that vanished: a saturated int8
    quantizer, dead ReLUs); the result says why (``Explanation.extras["blank"]``) and is not
    drawn as if it were a finding."""


def guard(what: str):
    """Decorator for user-facing entry points: any exception that is not an
    :class:`OnnxvizError` (nor KeyboardInterrupt/SystemExit) becomes one naming ``what`` and the
    cause in one line; the original is kept as ``__cause__`` for ``--debug``."""
    import functools

    def deco(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except OnnxvizError:
                raise
            except Exception as e:
                raise as_error(e, what) from e
        return wrapper
    return deco


def as_error(e: BaseException, what: str) -> OnnxvizError:
    """``e`` (not an OnnxvizError) as the closest OnnxvizError, with a one-line message."""
    text = " ".join(str(e).split())[:300] or type(e).__name__
    kind = type(e).__module__ + "." + type(e).__name__
    if isinstance(e, MemoryError):
        return ResourceError(f"{what}: out of memory ({text}); lower the batch size or the "
                             "option that sets the work")
    if "onnxruntime" in kind:
        if "allocat" in text.lower() or "bad_alloc" in text.lower():
            return ResourceError(f"{what}: ONNX Runtime could not allocate memory ({text})")
        return ExecutionError(f"{what}: ONNX Runtime failed: {text}")
    if isinstance(e, (TypeError, ValueError, OverflowError, IndexError, KeyError)):
        return OptionError(f"{what}: {type(e).__name__}: {text}")
    if isinstance(e, OSError):
        return OnnxvizError(f"{what}: {text}")
    return OnnxvizError(f"{what} failed: {type(e).__name__}: {text}")
