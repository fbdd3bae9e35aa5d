"""Every endpoint over real HTTP, and answers equal to ``ov.explain`` / ``Model.predict`` bit for bit."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import onnxviz as ov
from onnxviz import viz
from tests.serve.helpers import png_b64

METHODS = "gradcam,occlusion,saliency"


@pytest.fixture(scope="module")
def server(start_server, shapes_path, effnet_path):
    return start_server([f"shapes={shapes_path}", f"effnet={effnet_path}", "--method", METHODS])


@pytest.fixture(scope="module")
def models(shapes_path, effnet_path):
    return {"shapes": ov.load(shapes_path, threads=1), "effnet": ov.load(effnet_path, threads=1)}


def b64png(pic) -> str:
    return base64.b64encode(viz.encode_png(pic)).decode("ascii")


def assert_same(got: dict, e, image, outputs=("heatmap_png", "overlay_png")) -> None:
    """A v1 explanation equals the library's Explanation on ``image``: every number, the
    heatmap's float32 values, the PNGs' bytes."""
    want = e.to_dict()
    for k in ("method", "target", "label", "score", "params", "extras"):
        assert got[k] == want[k], k
    assert set(got["timings"]) == set(want["timings"])
    if "heatmap" in outputs:
        heat = np.asarray(got["heatmap"], np.float32)
        assert heat.shape == e.heatmap.shape
        assert np.array_equal(heat.view(np.uint32), e.heatmap.astype(np.float32).view(np.uint32))
    else:
        assert "heatmap" not in got
    if "heatmap_png" in outputs:
        assert got["heatmap_png"] == b64png(viz.apply_colormap(e.heatmap, "jet", clip_percent=1))
    if "overlay_png" in outputs:
        assert got["overlay_png"] == b64png(viz.overlay(image, e.heatmap, alpha=0.4, cmap="jet",
                                                        clip_percent=1))


def test_health_listing_and_metadata(server):
    c = server.client
    assert c.get("/").json() == {"status": "alive"}
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").json() == {"ready": True}
    assert c.get("/v1/models").json() == {"models": ["shapes", "effnet"]}
    assert c.get("/v1/models/effnet").json() == {"name": "effnet", "ready": True}
    assert c.get("/v2/models/effnet/ready").json() == {"name": "effnet", "ready": True}
    meta = c.get("/v2").json()
    assert meta["name"] == "onnxviz" and meta["version"] == ov.__version__
    m = c.get("/v2/models/effnet").json()
    assert m["name"] == "effnet" and m["platform"] == "onnxviz"
    assert {"name": "heatmap", "datatype": "FP32", "shape": [-1, 224, 224]} in m["outputs"]
    assert m["parameters"]["methods"] == METHODS.split(",")
    assert m["parameters"]["num_classes"] == 1000


def test_v1_explain_equals_ov_explain(server, models, chelsea):
    outputs = ["heatmap", "heatmap_png", "overlay_png"]
    r = server.client.post("/v1/models/effnet:explain",
                           json={"instances": [png_b64(chelsea)],
                                 "parameters": {"outputs": outputs}})
    assert r.status_code == 200, r.text
    (got,) = r.json()["explanations"]
    e = ov.explain(models["effnet"], chelsea, method="gradcam")
    assert got["label"] == "Egyptian cat"
    assert_same(got, e, chelsea, outputs)


def test_v1_several_instances_targets_and_forms(server, models, small_images):
    """Four images in one request: base64 PNG, the three ways of wrapping it, and nested arrays;
    one target each (index, label, top-1, label in another case)."""
    b = [png_b64(img) for img in small_images]
    instances = [b[0], {"b64": b[1]}, {"image_bytes": {"b64": b[2]}},
                 small_images[3].tolist()]
    targets = [0, "no_rectangle", None, "RECTANGLE"]
    r = server.client.post("/v1/models/shapes:explain",
                           json={"instances": instances,
                                 "parameters": {"target": targets, "outputs": "heatmap"}})
    assert r.status_code == 200, r.text
    got = r.json()["explanations"]
    want = ov.explain(models["shapes"], small_images, method="gradcam", target=targets)
    assert [g["target"] for g in got] == [0, 1, int(want[2].target), 0]
    for g, e, img in zip(got, want, small_images):
        assert_same(g, e, img, ("heatmap",))


def test_method_options_per_request(server, models, small_images):
    img = small_images[0]
    params = {"method": "occlusion", "patch": [16, 16], "stride": 8, "fill": 0,
              "outputs": ["heatmap", "overlay_png"]}
    r = server.client.post("/v1/models/shapes:explain",
                           json={"instances": [png_b64(img)], "parameters": params})
    assert r.status_code == 200, r.text
    e = ov.explain(models["shapes"], img, method="occlusion", patch=(16, 16), stride=8, fill=0)
    assert_same(r.json()["explanations"][0], e, img, ("heatmap", "overlay_png"))


def test_predict_equals_model_predict(server, models, chelsea, small_images):
    r = server.client.post("/v1/models/effnet:predict",
                           json={"instances": [png_b64(chelsea), png_b64(small_images[2])],
                                 "parameters": {"top": 3}})
    assert r.status_code == 200, r.text
    want = models["effnet"].predict([chelsea, small_images[2]], top=3)
    got = r.json()["predictions"]
    assert got == [[{"index": p.index, "label": p.label, "score": p.score,
                     "probability": p.probability} for p in row] for row in want]
    assert got[0][0]["label"] == "Egyptian cat"


def test_v2_infer_bytes(server, models, small_images):
    body = {"id": "req-7", "parameters": {"method": "saliency", "target": 1},
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                        "data": [png_b64(small_images[0]), png_b64(small_images[1])]}]}
    r = server.client.post("/v2/models/shapes/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == "shapes" and out["id"] == "req-7"
    assert out["parameters"] == {"method": "saliency"}
    t = {o["name"]: o for o in out["outputs"]}
    assert list(t) == ["heatmap", "target", "label", "score"]
    want = ov.explain(models["shapes"], small_images[:2], method="saliency", target=1)
    heat = np.asarray(t["heatmap"]["data"], np.float32).reshape(t["heatmap"]["shape"])
    assert heat.shape == (2, 64, 64)
    assert np.array_equal(heat, np.stack([e.heatmap for e in want]))
    assert t["target"] == {"name": "target", "datatype": "INT64", "shape": [2], "data": [1, 1]}
    assert t["label"]["data"] == ["no_rectangle"] * 2
    assert t["score"]["data"] == [e.score for e in want]


def test_v2_infer_pixels_and_png_outputs(server, models, small_images):
    img = small_images[1]
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, *img.shape],
                        "data": img.ravel().tolist()}],
            "outputs": [{"name": "overlay_png"}, {"name": "target"}]}
    r = server.client.post("/v2/models/shapes/infer", json=body)
    assert r.status_code == 200, r.text
    t = {o["name"]: o for o in r.json()["outputs"]}
    assert list(t) == ["overlay_png", "target"]
    e = ov.explain(models["shapes"], img, method="gradcam")
    assert t["target"]["data"] == [e.target]
    assert t["overlay_png"]["data"] == [b64png(viz.overlay(img, e.heatmap, alpha=0.4, cmap="jet",
                                                           clip_percent=1))]
