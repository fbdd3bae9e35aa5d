"""D-RISE equals the paper's formula written out in NumPy, given the same masks (issue 22).

The reference builds the masked images itself, runs the file with a plain ONNX Runtime session,
decodes the head by hand and weighs each mask by ``max_j IoU(L_t, L_j) O_j cos(P_t, P_j)``
(Petsiuk et al. 2021, eq. 2-4), with two loops; onnxviz must give the same maps for every box,
in both head layouts, whatever the batch size.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from test_tasks import detector, scene

import onnxviz as ov
from onnxviz.perturb import mask_params, rise_masks

N, CELLS, P, SEED = 60, 8, 0.5, 3


def _iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference(proto, layout, pixels, boxes, classes):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    h, w = pixels.shape[:2]
    grids, shifts, cell = mask_params(N, CELLS, P, (h, w), SEED)
    masks = np.empty((N + 1, h, w), np.float32)
    rise_masks(grids, shifts, cell, 0, masks)
    image = pixels.astype(np.float32) / 255.0  # the "unit" preprocessing; black fill = 0
    maps = np.zeros((len(classes), h, w))
    for i in range(1, N + 1):
        x = (image * masks[i][..., None]).transpose(2, 0, 1)[None]
        raw = sess.run(None, {"x": x.astype(np.float32)})[0][0]
        if layout == "yolov8":
            box, probs = raw[:4].T, raw[4:].T
            obj = probs.max(axis=1)
        else:
            box, obj, probs = raw[:, :4], raw[:, 4], raw[:, 5:]
        for t, (target, c) in enumerate(zip(boxes, classes)):
            best = 0.0
            for j in range(len(box)):
                cx, cy, bw, bh = box[j]
                lj = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
                cos = probs[j][c] / np.linalg.norm(probs[j])
                best = max(best, _iou(target, lj) * obj[j] * cos)
            maps[t] += best * masks[i]
    return maps / (N * P)


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
@pytest.mark.parametrize("batch_size", [7, 64])
def test_drise_equals_the_formula(layout, batch_size):
    proto = detector(layout)
    m = ov.load(proto)
    found = ov.explain(m, scene(), method="drise", num_masks=N, cells=CELLS, p=P, seed=SEED,
                       batch_size=batch_size)
    pixels = m.to_pixels(scene())[0]
    boxes = [np.asarray(e.box) / [3, 2, 3, 2] for e in found]  # photo -> input px
    ref = _reference(proto, layout, pixels, boxes, [e.target for e in found])
    for e, r in zip(found, ref):
        np.testing.assert_allclose(e.heatmap, r, rtol=1e-4, atol=1e-6 * np.abs(r).max())
        assert e.score == pytest.approx(0.997 if layout == "yolov8" else 0.994, abs=3e-3)


def test_drise_refuses_a_classifier(shapes_path):
    with pytest.raises(ov.OptionError, match="drise explains the boxes of object detectors"):
        ov.explain(ov.load(shapes_path), "skimage:chelsea", method="drise")
