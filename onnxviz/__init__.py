"""onnxviz: see what an image classifier looks at, whatever framework trained it.

    >>> import onnxviz as ov
    >>> m = ov.load(ov.bundled_model())
    >>> e = ov.explain(m, ov.read_image("cat.jpg"), method="gradcam")
    >>> e.heatmap.shape == m.input.size
    True

Submodules load on first use, so ``import onnxviz`` stays quick and the CLI starts fast.
"""

from __future__ import annotations

import importlib
import os
import sys


def _cache_dir() -> str:
    """The user's cache folder for onnxviz (never inside the installed package)."""
    if sys.platform == "win32":
        root = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
    elif sys.platform == "darwin":
        root = os.path.expanduser("~/Library/Caches")
    else:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(root, "onnxviz")


# Numba's compiled kernels go to the user cache (NUMBA_CACHE_DIR wins when set), not next to the
# package's files, which may be read-only or shared between users.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(_cache_dir(), "numba"))

from .errors import (
    ImageError,
    LayerError,
    ModelError,
    OnnxvizError,
    OptionError,
    TargetError,
    UnsupportedOpError,
)

__version__ = "0.1.0"

# public name -> (module, attribute)
_LAZY = {
    "load": (".model", "load"),
    "bundled_model": (".data", "bundled_model"),
    "Model": (".model", "Model"),
    "read_image": (".imageio", "read_image"),
    "explain": (".explainers", "explain"),
    "Explanation": (".explainers.base", "Explanation"),
    "activations": (".inside", "activations"),
    "visualize_filters": (".inside", "visualize_filters"),
    "deep_dream": (".inside", "deep_dream"),
}

__all__ = [
    "ImageError",
    "LayerError",
    "METHODS",
    "ModelError",
    "OnnxvizError",
    "OptionError",
    "TargetError",
    "UnsupportedOpError",
    *_LAZY,
]


def __getattr__(name: str):
    if name == "METHODS":
        from .explainers.registry import methods

        return tuple(methods())
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'onnxviz' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
