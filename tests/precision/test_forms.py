"""Every int8 and float16 form loads, predicts what ONNX Runtime computes on the file, and its
perturbation explanations are those of the file's own outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from tests.precision.conftest import FORMS, file_outputs
from skimage.transform import resize

import onnxviz as ov
from onnxviz.errors import PrecisionError
from onnxviz.perturb import lime_kernel, mask_params, sample_matrix, weighted_ridge

EXPECTED = {  # form -> (compute, io, quantization, default gradient mode)
    "float32": ("float32", "float32", None, "exact"),
    "dynamic": ("int8", "float32", "dynamic", "ste"),
    "qdq": ("int8", "float32", "qdq", "ste-logit"),
    "qoperator": ("int8", "float32", "qoperator", "surrogate"),
    "fp16": ("float16", "float16", None, "upcast"),
    "fp16-io32": ("float16", "float32", None, "upcast"),
    "mixed": ("mixed", "float32", None, "upcast"),
}
CASES = [(m, f) for m in ("shapes", "resnet") for f in ("float32", *FORMS)]


def _images(name, shapes_data, photos):
    return list(shapes_data[0][:4]) if name == "shapes" else list(photos)


@pytest.mark.parametrize("name,form", CASES)
def test_form_detected_and_predictions_are_the_files(files, name, form, shapes_data, photos):
    path = files(name)[form]
    m = ov.load(path, threads=2)
    p = m.precision
    assert (p.compute, p.io, p.quantization, p.gradients) == EXPECTED[form]
    x = m.preprocess(_images(name, shapes_data, photos))
    want = file_outputs(path, x)
    got = m.forward(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    top = m.predict(_images(name, shapes_data, photos)[0], top=1)[0]
    assert top.index == int(np.argmax(want[0]))


@pytest.mark.parametrize("name,form", CASES)
def test_occlusion_is_the_files_score_drop(files, name, form, shapes_data, photos):
    path = files(name)[form]
    m = ov.load(path, threads=2)
    px = _images(name, shapes_data, photos)[0]
    e = ov.explain(m, px, method="occlusion", patch=16, stride=16, fill="gray", score="logit",
                   target=0)
    occluded = []
    for y in range(0, 64, 16):
        for x in range(0, 64, 16):
            im = px.copy()
            im[y:y + 16, x:x + 16] = 128
            occluded.append(im)
    s = file_outputs(path, m.normalize(np.stack([px, *occluded]).astype(np.float32)))[:, 0]
    np.testing.assert_allclose(e.raw.ravel(), s[0] - s[1:], rtol=0,
                               atol=1e-5 * np.abs(s).max())


def _rise_masks(n, cells, p, size, seed):
    """github.com/eclique/RISE's masks, with onnxviz's grids and shifts for ``seed``."""
    grids, shifts, cell = mask_params(n, cells, p, size, seed)
    up = (cells + 1) * cell
    return np.stack([resize(g, up, order=1, mode="reflect", anti_aliasing=False)[
        dy:dy + size[0], dx:dx + size[1]] for g, (dy, dx) in zip(grids, shifts)])


@pytest.mark.parametrize("name,form", CASES)
def test_rise_is_the_files_masked_scores(files, name, form, shapes_data, photos):
    path = files(name)[form]
    m = ov.load(path, threads=2)
    px = _images(name, shapes_data, photos)[0]
    n, p = 16, 0.5
    e = ov.explain(m, px, method="rise", num_masks=n, cells=4, p=p, seed=1, fill="black",
                   score="logit", target=0)
    masks = _rise_masks(n, 4, p, (64, 64), seed=1)
    s = file_outputs(path, m.normalize((masks[..., None] * px).astype(np.float32)))[:, 0]
    # blending happens in input space in float32, then the batch is cast to the file's type:
    # float16 inputs (or an int8 input quantizer) may round a blended value the other way
    tol = 1e-5 if form in ("float32", "fp16-io32", "mixed") and name == "shapes" else 2e-2
    np.testing.assert_allclose(e.raw, s, rtol=0, atol=tol * np.abs(s).max())
    want = np.einsum("n,nhw->hw", s.astype(np.float64), masks) / (n * p)
    np.testing.assert_allclose(e.heatmap, want, rtol=0, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("name,form", CASES)
def test_lime_is_the_files_ridge_fit(files, name, form, shapes_data, photos):
    path = files(name)[form]
    m = ov.load(path, threads=2)
    px = _images(name, shapes_data, photos)[0]
    n = 40
    e = ov.explain(m, px, method="lime", num_samples=n, segmentation="grid", n_segments=16,
                   fill="gray", score="logit", seed=2, target=0, top_labels=0)
    seg = e.segments
    keep = sample_matrix(n, int(seg.max()) + 1, 2)
    samples = np.where(keep[:, seg][..., None], px, np.uint8(128))
    s = file_outputs(path, m.normalize(samples.astype(np.float32)))[:, 0]
    coef, intercept, _ = weighted_ridge(keep.astype(np.float64), s.astype(np.float64),
                                        lime_kernel(keep, 0.25), alpha=1.0)
    np.testing.assert_allclose(e.raw, coef, rtol=0, atol=1e-4 * np.abs(coef).max())


def test_unsorted_graph_loads_sorted(shapes_files, shapes_data):
    proto = onnx.load(str(shapes_files["fp16-io32"]))
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes[::-1])
    m = ov.load(proto.SerializeToString(), threads=2)
    assert "sorted the nodes topologically" in m.notes
    x = m.preprocess(list(shapes_data[0][:2]))
    np.testing.assert_array_equal(m.forward(x), file_outputs(shapes_files["fp16-io32"], x))


def test_ste_refused_for_qoperator(shapes_files):
    with pytest.raises(PrecisionError, match="surrogate"):
        ov.load(shapes_files["qoperator"], gradients="ste")
    m = ov.load(shapes_files["qdq"])
    with pytest.raises(PrecisionError, match="gradients must be"):
        m.gradient_mode = "exact-ish"
