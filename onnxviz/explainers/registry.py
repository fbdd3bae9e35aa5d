"""One registry of explanation methods: it feeds ``ov.METHODS``, ``ov.explain``, the CLI and docs."""

from __future__ import annotations

import threading

from ..errors import OptionError, close_matches
from .base import Explainer

_REGISTRY: dict[str, type[Explainer]] = {}

# Modules that register methods when imported, in the order methods are listed (the order of
# ov.METHODS: registration order; a method module imported on its own before the registry loads
# registers its methods first).
_MODULES = ("perturbation", "saliency", "cam", "scorecam", "cam_more", "attention", "modified",
            "lrp", "gradient_shap")
_loaded = False
_LOADING = threading.RLock()


def register(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import importlib

    with _LOADING:  # threads explaining at once import the families once, in one order
        if _loaded:
            return
        for mod in _MODULES:
            try:
                importlib.import_module(f"{__package__}.{mod}")
            except ModuleNotFoundError as e:  # a family not built yet
                if e.name != f"{__package__}.{mod}":
                    raise
        _loaded = True


def methods() -> list[str]:
    """Names of every registered method."""
    _load_all()
    return list(_REGISTRY)


def get(name: str) -> type[Explainer]:
    """The explainer class for ``name``; an unknown name lists the close ones."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = close_matches(name, _REGISTRY) or list(_REGISTRY)
        raise OptionError(f"unknown method {name!r}; choose from: {', '.join(hint)}") from None
