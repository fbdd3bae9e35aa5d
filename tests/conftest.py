"""Shared fixtures: repository paths, the third-party ONNX files and the bundled models."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real third-party ONNX files, kept outside the repository (its sibling ``shared``).
FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "third_party"
#: The bundled models, shipped in the wheel as package data.
MODELS_DIR = REPO_ROOT / "onnxviz" / "data" / "models"


def third_party_files() -> list[Path]:
    """Every third-party ``.onnx`` fixture (empty when the folder is absent)."""
    return sorted(FIXTURES_DIR.glob("*.onnx"))


def _model(name: str) -> Path:
    path = MODELS_DIR / name
    if not path.exists():
        pytest.skip(f"bundled model {path.relative_to(REPO_ROOT)} is not built yet "
                    "(made by the scripts of models/; see models/README.md)")
    return path


def pytest_configure(config):
    """Load every method in the registry's own order before any test module is collected: a test
    module that imports one explainer module first (``onnxviz.explainers.gradient_shap``) would
    otherwise register its methods first, and the method order (ov.METHODS, docs/cli.md) would
    depend on which tests run."""
    from onnxviz.explainers.registry import methods

    methods()


@pytest.fixture(scope="module", autouse=True)
def _free_sessions_after_each_module():
    """The suite runs hundreds of models in one process: after each test module, drop the cached
    ONNX Runtime sessions (their arenas keep the largest batch's memory) and collect garbage, so
    that memory stays bounded by the largest module, not by the sum of all of them."""
    yield
    from tests.memory_helpers import free_memory

    free_memory()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES_DIR.is_dir():
        pytest.fail(f"third-party fixtures folder {FIXTURES_DIR} is missing")
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def effnet_path() -> Path:
    """onnxviz/data/models/efficientnet_lite0.onnx (ImageNet EfficientNet-Lite0)."""
    return _model("efficientnet_lite0.onnx")


@pytest.fixture(scope="session")
def shapes_path() -> Path:
    """onnxviz/data/models/shapes_cnn.onnx (the LIME-article rectangle task, PyTorch)."""
    return _model("shapes_cnn.onnx")


@pytest.fixture(scope="session")
def shapes_keras_path() -> Path:
    """onnxviz/data/models/shapes_keras.onnx (the same task, Keras, NHWC)."""
    return _model("shapes_keras.onnx")


def pytest_generate_tests(metafunc):
    """A test taking ``third_party_path`` runs once per third-party fixture file."""
    if "third_party_path" in metafunc.fixturenames:
        files = third_party_files()
        metafunc.parametrize("third_party_path", files, ids=[p.stem for p in files])
