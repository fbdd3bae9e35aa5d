"""Fixtures the explainer tests share: EfficientNet-Lite0 (ONNX and its torch original), photos,
and the import of the repository's ``models/`` modules."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import onnxviz as ov

ROOT = Path(__file__).resolve().parents[2]


def _repo_module(name: str):
    """Import a module of the repository's ``models/`` folder (not an installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def repo_module():
    """``repo_module("models.shapes")``: a module of the repository's ``models/`` folder."""
    return _repo_module


@pytest.fixture(scope="session")
def effnet(effnet_path):
    """onnxviz/data/models/efficientnet_lite0.onnx, loaded once (2 ONNX Runtime threads)."""
    return ov.load(effnet_path, threads=2)


@pytest.fixture(scope="session")
def chelsea(effnet):
    """skimage's cat photo at EfficientNet's input size, (224, 224, 3) uint8."""
    import skimage.data

    return effnet.to_pixels(skimage.data.chelsea())[0]


@pytest.fixture(scope="session")
def pixels():
    """Two photos resized to 224 x 224 with OpenCV: chelsea (a cat) and coffee."""
    import cv2
    import skimage.data

    return [cv2.resize(im, (224, 224), interpolation=cv2.INTER_LINEAR)
            for im in (skimage.data.chelsea(), skimage.data.coffee())]


@pytest.fixture(scope="session")
def torch_net():
    """The torch original of EfficientNet-Lite0 (models/build_efficientnet.py), unmodified."""
    pytest.importorskip("torch")
    return _repo_module("models.build_efficientnet").torch_model()
