"""The graph cut at a layer (onnxviz/model/cut.py): K seeds of one image differentiated with
respect to a layer through the suffix graph give what the whole gradient graph gives for each
row alone (which tests/autodiff checks against finite differences and the frameworks)."""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.model.cut import distinct_rows, plan
from onnxviz.model.inputs import probe


def _layers(m, count=3):
    """A few 4-D layers spread over the graph (not the input)."""
    found = [ly.name for ly in m.layers() if len(ly.shape) == 4 and ly.tensor != m.input.name]
    idx = np.linspace(0, len(found) - 1, count).round().astype(int)
    return list(dict.fromkeys(found[i] for i in idx))


def _check(m, layer, rng):
    x1, x2 = probe(m.input, 1, seed=1), probe(m.input, 1, seed=2)
    x = np.concatenate([x1, x1, x2, x1, x2])  # two images, repeated, in mixed order
    k = int(np.prod(m.shape_of(m.score_output)[1:]))  # a detector: its raw head
    seed = rng.normal(size=(len(x), k)).astype(np.float32)
    grads, exposed, scores = m.gradients(x, seed, wrt=[layer], expose=[layer])
    key = [c for c in m.__dict__.get("_cut_cache", {}).values() if c is not None]
    assert key, f"the cut was not used for {layer}"
    for i in range(len(x)):  # one row at a time: the whole gradient graph, never cut
        g, e, s = m.gradients(x[i:i + 1], seed[i:i + 1], wrt=[layer], expose=[layer])
        scale = np.abs(g[layer]).max() + 1e-12
        np.testing.assert_allclose(grads[layer][i], g[layer][0], rtol=0, atol=1e-5 * scale)
        np.testing.assert_allclose(exposed[layer][i], e[layer][0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(scores[i], s[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["shapes_cnn.onnx", "efficientnet_lite0.onnx",
                                  "shapes_keras.onnx", "shapes_detector.onnx"])
def test_cut_equals_the_whole_gradient_graph(repo_root, name):
    m = ov.load(repo_root / "onnxviz" / "data" / "models" / name, threads=2)
    rng = np.random.default_rng(0)
    for layer in _layers(m):
        m.__dict__.pop("_cut_cache", None)
        _check(m, layer, rng)


def test_cut_on_third_party_files(third_party_path):
    m = ov.load(third_party_path, threads=2)
    layers = _layers(m, 2)
    if not layers:  # a dense-only net (MATLAB's tansig MLP): no layer to cut at
        assert m.layers() and all(len(ly.shape) != 4 for ly in m.layers()[1:])
        return
    for layer in layers:
        m.__dict__.pop("_cut_cache", None)
        _check(m, layer, np.random.default_rng(1))


def test_no_cut_for_the_input_or_distinct_images(repo_root):
    m = ov.load(repo_root / "onnxviz" / "data" / "models" / "shapes_cnn.onnx")
    score = m.score_output
    assert plan(m, score, score, (m.input.name,), ()) is None  # an input gradient
    x = probe(m.input, 3, seed=0)
    m.gradients(x, np.ones((3, m.num_classes), np.float32), wrt=[_layers(m)[0]])
    assert "_cut_cache" not in m.__dict__  # three distinct images: nothing to share


def test_distinct_rows():
    x = np.array([[1, 2], [3, 4], [1, 2], [5, 6], [3, 4]], np.float32)
    first, inverse = distinct_rows(x)
    assert first.tolist() == [0, 1, 3] and inverse.tolist() == [0, 1, 0, 2, 1]
    assert np.array_equal(x[first][inverse], x)
