"""ov.bundled_model: the models shipped as package data, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

import onnxviz as ov
from onnxviz.data import BUNDLED, MODELS_DIR


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_model_is_in_the_package(name):
    path = ov.bundled_model(name)
    assert path == MODELS_DIR / f"{name}.onnx" and path.stat().st_size > 10_000
    assert path.parents[2] == Path(ov.__file__).parent


def test_the_default_is_efficientnet_with_its_labels():
    m = ov.load(ov.bundled_model())
    assert m.input.size == (224, 224) and len(m.labels) == 1000


def test_an_unknown_name_lists_the_bundled_ones():
    with pytest.raises(ov.ModelError, match="shapes_cnn"):
        ov.bundled_model("resnet50")
