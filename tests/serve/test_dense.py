"""Detectors and segmenters over HTTP: ``:predict`` gives boxes or regions and ``:explain`` one
explanation per box or region, equal to ``Model.predict`` and ``ov.explain`` bit for bit.

The models are the inline ones of ``tests/detection/test_tasks.py``: a detector that scores each
4x4 cell by its mean colour (two boxes in its scene: red and blue) and a segmenter whose logits are
the pixels.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import onnx
import pytest

import onnxviz as ov
from onnxviz import viz
from tests.detection.test_tasks import detector, scene, segmenter
from tests.serve.helpers import png_b64


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("dense")
    onnx.save(detector(), d / "cells.onnx")
    onnx.save(segmenter(), d / "seg.onnx")
    return {"cells": d / "cells.onnx", "seg": d / "seg.onnx"}


@pytest.fixture(scope="module")
def server(start_server, paths):
    return start_server([f"cells={paths['cells']}", f"seg={paths['seg']}",
                         "--method", "saliency,occlusion,gradcam,odam"])


@pytest.fixture(scope="module")
def models(paths):
    return {k: ov.load(p, threads=1) for k, p in paths.items()}


def explain(server, name, params, image=None):
    r = server.client.post(f"/v1/models/{name}:explain",
                           json={"instances": [png_b64(scene() if image is None else image)],
                                 "parameters": params})
    assert r.status_code == 200, r.text
    return r.json()["explanations"]


def same(got: dict, e, image) -> None:
    want = e.to_dict()
    for k in ("method", "target", "label", "score", "params", "extras"):
        assert got[k] == want[k], k
    heat = np.asarray(got["heatmap"], np.float32)
    assert np.array_equal(heat.view(np.uint32), e.heatmap.astype(np.float32).view(np.uint32))
    over = viz.overlay(image, e.heatmap, alpha=0.4, cmap="jet", clip_percent=1)
    if e.box is not None:  # the box drawn on its own map, as every door draws it
        over = viz.draw_box(over, e.box, f"{e.label} {e.score:.2f}")
    png = base64.b64encode(viz.encode_png(over)).decode("ascii")
    assert got["overlay_png"] == png


def test_detector_metadata_and_predict(server, models):
    meta = server.client.get("/v2/models/cells").json()["parameters"]
    assert (meta["task"], meta["layout"], meta["num_classes"]) == ("detect", "yolov8", 3)
    r = server.client.post("/v1/models/cells:predict", json={"instances": [png_b64(scene())]})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"][0]
    assert got == models["cells"].predict(scene()).records()
    assert [d["label"] for d in got] == ["red", "blue"]
    strict = server.client.post("/v1/models/cells:predict", json={
        "instances": [png_b64(scene())], "parameters": {"score_threshold": 0.999}})
    assert strict.json()["predictions"] == [[]]


@pytest.mark.parametrize("method", ["saliency", "odam"])
def test_every_box_explained_equals_ov_explain(server, models, method):
    got = explain(server, "cells", {"method": method, "outputs": ["heatmap", "overlay_png"]})
    want = ov.explain(models["cells"], scene(), method=method)
    assert [g["label"] for g in got] == ["red", "blue"] and len(want) == 2
    boxes = models["cells"].predict(scene()).xyxy
    for k, (g, e) in enumerate(zip(got, want)):
        same(g, e, scene())
        assert g["instance"] == 0 and g["box"] == pytest.approx(boxes[k].tolist())


def test_one_box_by_index_or_by_box_and_label(server, models):
    m = models["cells"]
    by_index = explain(server, "cells", {"method": "occlusion", "patch": 4, "stride": 4,
                                         "target": 1, "outputs": ["heatmap", "overlay_png"]})
    e = ov.explain(m, scene(), method="occlusion", patch=4, stride=4, target=1)
    assert len(by_index) == 1 and by_index[0]["label"] == "blue"
    same(by_index[0], e[0], scene())
    box = [23, 7, 37, 17]  # about the red detection, in the photo's pixels
    by_box = explain(server, "cells", {"method": "saliency", "target": {"box": box, "label": 0},
                                       "outputs": ["heatmap", "overlay_png"]})
    e = ov.explain(m, scene(), method="saliency", target={"box": box, "label": 0})
    assert by_box[0]["label"] == "red"
    same(by_box[0], e[0], scene())


def test_detector_thresholds_reach_the_explainer(server, models):
    got = explain(server, "cells", {"method": "saliency", "score_threshold": 0.5,
                                    "max_detections": 1, "outputs": ["heatmap", "overlay_png"]})
    want = ov.explain(models["cells"], scene(), method="saliency", score_threshold=0.5,
                      max_detections=1)
    assert len(got) == len(want) == 1
    same(got[0], want[0], scene())


@pytest.mark.parametrize(("name", "params", "words"), [
    ("cells", {"target": 5}, "detection 5 does not exist"),
    ("cells", {"target": {"box": [0, 0, 10]}}, "four numbers"),
    ("cells", {"target": {"box": [1, 1, 9, 9], "label": "purple"}}, "unknown class 'purple'"),
    ("cells", {"score_threshold": 2}, "score_threshold must be a number in [0, 1]"),
    ("seg", {"score_threshold": 0.5}, "options of detectors"),
])
def test_bad_detector_requests_are_one_line(server, name, params, words):
    r = server.client.post(f"/v1/models/{name}:explain",
                           json={"instances": [png_b64(scene())],
                                 "parameters": {"method": "saliency", **params}})
    assert r.status_code == 400 and words in r.json()["error"], r.text
    assert server.alive()


def test_v2_and_top_say_where_to_go(server):
    r = server.client.post("/v2/models/cells/infer", json={"inputs": [{
        "name": "image", "datatype": "BYTES", "shape": [1], "data": [png_b64(scene())]}]})
    assert r.status_code == 400 and "POST /v1/models/cells:explain" in r.json()["error"]
    r = server.client.post("/v1/models/cells:predict",
                           json={"instances": [png_b64(scene())], "parameters": {"top": 3}})
    assert r.status_code == 400 and "score_threshold" in r.json()["error"]


def test_segmenter_regions_and_their_explanations(server, models):
    m = models["seg"]
    r = server.client.post("/v1/models/seg:predict", json={"instances": [png_b64(scene())]})
    assert r.status_code == 200, r.text
    answer = r.json()
    seg = m.predict(scene())
    assert answer["predictions"][0] == seg.records()
    buf = np.frombuffer(base64.b64decode(answer["class_maps"][0]), np.uint8)
    assert np.array_equal(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), seg.class_map)
    got = explain(server, "seg", {"method": "saliency", "target": "blue",
                                  "outputs": ["heatmap", "overlay_png"]})
    e = ov.explain(m, scene(), method="saliency", target="blue")
    assert len(got) == 1 and got[0]["label"] == "blue" and got[0]["region"]["source"] == "predicted"
    same(got[0], e[0], scene())
    every = explain(server, "seg", {"method": "saliency", "outputs": ["heatmap", "overlay_png"]})
    want = ov.explain(m, scene(), method="saliency")
    assert [g["region"] for g in every] == [w.region for w in want]
    assert [g["label"] for g in every] == [w.label for w in want]
    for g, w in zip(every, want):
        same(g, w, scene())
