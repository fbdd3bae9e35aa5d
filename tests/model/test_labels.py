"""Labels (ImageNet file, metadata, files) and target resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.model.labels import imagenet_labels, read_labels


def test_imagenet_file():
    names = imagenet_labels()
    assert len(names) == 1000 == len(set(names))  # torchvision's list has unique names
    assert (names[0], names[281], names[285], names[999]) == (
        "tench", "tabby", "Egyptian cat", "toilet tissue")


def test_thousand_classes_get_imagenet(make_cnn):
    m = ov.load(make_cnn(classes=1000), preprocess="unit")
    assert m.labels_source == "imagenet" and m.label_of(281) == "tabby"


def test_metadata_labels(make_cnn):
    names = ["cat", "dog", "bird", "fish"]
    m = ov.load(make_cnn(metadata={"onnxviz.labels": json.dumps(names)}), preprocess="unit")
    assert m.labels == names and m.labels_source == "metadata"
    with pytest.warns(UserWarning, match="3 labels for 4 classes"):
        m = ov.load(make_cnn(metadata={"onnxviz.labels": json.dumps(names[:3])}),
                    preprocess="unit")
    assert m.labels is None and m.label_of(2) == "class 2"


def test_label_files(make_cnn, tmp_path):
    (tmp_path / "l.txt").write_text("# my classes\ncat\n\ndog\nbird\nfish\n")
    (tmp_path / "l.json").write_text('["a", "b", "c", "d"]')
    assert read_labels(tmp_path / "l.txt") == ["cat", "dog", "bird", "fish"]
    m = ov.load(make_cnn(), preprocess="unit", labels=tmp_path / "l.json")
    assert m.labels == ["a", "b", "c", "d"] and m.labels_source == "file"
    m = ov.load(make_cnn(), preprocess="unit", labels=["w", "x", "y", "z"])
    assert m.labels_source == "argument"
    with pytest.raises(ov.OptionError, match="2 labels given but the model has 4 classes"):
        ov.load(make_cnn(), preprocess="unit", labels=["a", "b"])
    with pytest.raises(ov.OptionError, match="labels file not found"):
        ov.load(make_cnn(), preprocess="unit", labels=tmp_path / "missing.txt")


@pytest.fixture
def labelled(make_cnn):
    return ov.load(make_cnn(), preprocess="unit", labels=["cat", "dog", "Bird", "fish"])


def test_resolve_targets(labelled):
    scores = np.array([[0, 5, 1, 2], [9, 1, 1, 1]], np.float32)
    np.testing.assert_array_equal(labelled.resolve_targets(None, scores), [1, 0])
    np.testing.assert_array_equal(labelled.resolve_targets(3, scores), [3, 3])
    np.testing.assert_array_equal(labelled.resolve_targets("fish", scores), [3, 3])
    np.testing.assert_array_equal(labelled.resolve_targets("bird", scores), [2, 2])  # any case
    np.testing.assert_array_equal(labelled.resolve_targets("2", scores), [2, 2])
    np.testing.assert_array_equal(labelled.resolve_targets(["dog", None], scores), [1, 0])
    np.testing.assert_array_equal(labelled.resolve_targets(np.int64(1), scores), [1, 1])


@pytest.mark.parametrize("target, match", [
    (4, "out of range 0..3"),
    (-1, "out of range"),
    ("fsh", "did you mean 'fish'"),
    ([1, 2, 3], "3 targets given for 2 images"),
    (1.5, "class index or a label"),
    (True, "class index or a label"),
])
def test_bad_targets(labelled, target, match):
    with pytest.raises(ov.TargetError, match=match):
        labelled.resolve_targets(target, np.zeros((2, 4), np.float32))


def test_label_target_needs_labels(make_cnn):
    m = ov.load(make_cnn(), preprocess="unit")
    with pytest.raises(ov.TargetError, match="no labels"):
        m.resolve_targets("cat", np.zeros((1, 4)))
