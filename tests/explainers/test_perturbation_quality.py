"""Perturbation methods find the rectangle of the LIME article's shapes task; streaming stays small.

``onnxviz/data/models/shapes_cnn.onnx`` tells "rectangle" (a white box on noise) from "no_rectangle". The
score explained is the logit: the network is so sure (probability 1.0 to float precision) that
hiding part of the box does not move the probability, only the logit.
"""

from __future__ import annotations

import importlib
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import onnxviz as ov

ROOT = Path(__file__).resolve().parents[2]


def shapes_data(n: int, seed: int):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("models.shapes").make_dataset(n, seed=seed)


@pytest.fixture(scope="module")
def rectangles(shapes_path):
    images, labels, boxes = shapes_data(40, seed=7)
    idx = np.flatnonzero(labels == 0)[:20]
    return ov.load(shapes_path), list(images[idx]), boxes[idx]


def inside(point, box) -> bool:
    y, x = point
    return box[0] <= y < box[2] and box[1] <= x < box[3]


@pytest.mark.parametrize("method,options", [
    ("occlusion", dict(patch=8, stride=4, fill="gray")),
    ("rise", dict(num_masks=300, cells=8, seed=0)),
])
def test_heatmap_maximum_in_the_rectangle(rectangles, method, options):
    m, images, boxes = rectangles
    es = ov.explain(m, images, method=method, target="rectangle", score="logit", batch_size=64,
                    **options)
    hits = [inside(np.unravel_index(np.argmax(e.heatmap), e.heatmap.shape), b)
            for e, b in zip(es, boxes)]
    assert np.mean(hits) >= 0.9, hits


def test_lime_top_superpixel_in_the_rectangle(rectangles):
    """Most of the best superpixel's pixels lie in the box. The fill is grey: each hidden
    superpixel's own mean colour (lime's default) would leave a uniform white box unchanged."""
    m, images, boxes = rectangles
    es = ov.explain(m, images, method="lime", target="rectangle", score="logit",
                    segmentation="felzenszwalb", fill="gray", num_samples=200, batch_size=64)
    hits = []
    for e, (y0, x0, y1, x1) in zip(es, boxes):
        top = e.segments == int(np.argmax(e.raw))
        hits.append(top[y0:y1, x0:x1].sum() > 0.5 * top.sum())
    assert np.mean(hits) >= 0.9, hits


def test_streaming_holds_two_batches(rectangles, monkeypatch):
    """MATLAB's stride-1 run scaled down: 4,097 images of 3x64x64 (201 MB at once) stream
    through two 32-image buffers."""
    from onnxviz.explainers.perturbation import common

    made = []

    class CountedSlot(common.Slot):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(common, "Slot", CountedSlot)
    m, images, _ = rectangles
    tracemalloc.start()
    try:
        # the full-inference stream (incremental occlusion batches its crops by itself)
        e = ov.explain(m, images[0], method="occlusion", patch=9, stride=1, edges="center",
                       score="logit", batch_size=32, incremental=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.extras["forwards"] == 64 * 64 + 1 and e.raw.shape == (64, 64)
    assert len(made) == 2
    batch = 32 * 3 * 64 * 64 * 4
    assert peak < 4 * batch, peak  # 201 MB if the images were held at once
