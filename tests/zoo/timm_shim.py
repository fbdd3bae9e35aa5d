"""Import timm on a CPU torch build without torchvision (test code only).

The only torchvision wheel matching torch 2.13 here is a CUDA build that fails to import on the CPU
torch. timm imports ``torchvision`` lazily in a few places and some of its dependencies import
``torchvision.ops`` at import time, which needs the two operator schemas below. Registering them
with ``torch.library`` is enough for timm's model code (none of them is called by the classifiers
tested here).
"""

from __future__ import annotations

import pytest

_DONE = False


def import_timm():
    """``timm``, or skip the test when it is not installed."""
    register_torchvision_ops()
    return pytest.importorskip("timm")


def register_torchvision_ops():
    """Define ``torchvision::nms`` and ``torchvision::qnms`` so that torchvision imports (timm and
    transformers import it)."""
    global _DONE
    torch = pytest.importorskip("torch")
    if not _DONE:
        try:
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            import_timm._lib = lib  # keep the registration alive
        except RuntimeError:
            pass  # already defined (a real torchvision, or a second import)
        _DONE = True
