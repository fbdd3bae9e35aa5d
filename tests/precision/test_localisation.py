"""On the shapes task, Grad-CAM and saliency of the int8 and float16 files still point at the
rectangle, and their maps rank pixels as the float model's do.

Measured (16 rectangle images, argmax in the box; Spearman of the maps with the float model's):
every case below hits 16/16 with mean Spearman >= 0.95 (saliency of dynamic quantization with
STE 0.957, the others >= 0.99). Not asserted, and why: QDQ with STE gives zero gradients at the
rectangle (its white pixels saturate the quantizer after the fixed first layer, so the QAT
gradient there is 0: Grad-CAM 13/16, saliency 0/16); use ``gradients="surrogate"`` for such
files. QOperator Grad-CAM: ONNX shape inference does not know the shapes after com.microsoft ops,
so the default layer is the first convolution (Spearman 0.59).
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.precision.conftest import _repo

import onnxviz as ov

CASES = [("qdq", "surrogate", "gradcam"), ("qdq", "surrogate", "saliency"),
         ("qoperator", None, "saliency"), ("dynamic", None, "gradcam"),
         ("dynamic", None, "saliency"), ("dynamic", "surrogate", "saliency"),
         ("fp16", None, "gradcam"), ("fp16", None, "saliency"),
         ("fp16-io32", None, "saliency"), ("mixed", None, "gradcam"), ("mixed", None, "saliency")]
MIN_SPEARMAN = {"saliency": 0.9, "gradcam": 0.9}


@pytest.fixture(scope="module")
def rectangles():
    images, labels, boxes = _repo("models.shapes").make_dataset(40, seed=123)
    keep = np.flatnonzero(labels == 0)[:16]
    return [images[i] for i in keep], boxes[keep]


@pytest.fixture(scope="module")
def float_maps(shapes_files, rectangles):
    m = ov.load(shapes_files["float32"], threads=2)
    return {meth: [e.heatmap for e in ov.explain(m, rectangles[0], method=meth, target=0)]
            for meth in ("gradcam", "saliency")}


@pytest.mark.parametrize("form,mode,method", CASES)
def test_maps_localise_and_follow_the_float_model(shapes_files, rectangles, float_maps, form,
                                                  mode, method):
    from scipy.stats import spearmanr

    m = ov.load(shapes_files[form], threads=2, gradients=mode)
    exps = ov.explain(m, rectangles[0], method=method, target=0)
    assert exps[0].extras["gradients"] == m.gradient_mode
    hits, rho = 0, []
    for e, box, ref in zip(exps, rectangles[1], float_maps[method]):
        y, x = np.unravel_index(np.argmax(e.heatmap), e.heatmap.shape)
        hits += box[0] <= y < box[2] and box[1] <= x < box[3]
        rho.append(spearmanr(e.heatmap.ravel(), ref.ravel())[0])
    assert hits >= 0.9 * len(exps), f"{hits}/{len(exps)}"
    assert np.mean(rho) >= MIN_SPEARMAN[method], np.mean(rho)
