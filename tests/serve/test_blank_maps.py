"""The server's answer says when a map is blank (issue 20): the v1 explanation's ``extras``, no
picture drawn (empty PNG text), and the v2 response's ``parameters.flags``, one per image."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tests.precision.tiny import cnn, images
from tests.serve.helpers import png_b64


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, shapes_path):
    dead = tmp_path_factory.mktemp("dead") / "dead.onnx"
    onnx.save(cnn(bias=-100.0), str(dead))  # every ReLU dead: no gradient anywhere
    return start_server([f"dead={dead}", f"shapes={shapes_path}", "--method", "saliency"])


def test_v1_answer_flags_a_blank_map_and_draws_nothing(server):
    img = images(1, 0, 256, seed=3)[0]
    r = server.client.post("/v1/models/dead:explain",
                           json={"instances": [png_b64(img)],
                                 "parameters": {"outputs": ["heatmap", "overlay_png"]}})
    assert r.status_code == 200, r.text
    (got,) = r.json()["explanations"]
    assert got["extras"]["blank"].startswith("the map is all zero")
    assert "the gradient of logit" in got["extras"]["blank"]
    assert got["overlay_png"] == ""
    assert np.ptp(np.asarray(got["heatmap"])) == 0


def test_v2_answer_flags_each_blank_map(server, small_images):
    img = images(1, 0, 256, seed=3)[0]
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                        "data": [png_b64(img), png_b64(img)]}],
            "outputs": [{"name": "heatmap_png"}, {"name": "target"}]}
    r = server.client.post("/v2/models/dead/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    flags = out["parameters"]["flags"]
    assert len(flags) == 2 and all(f.startswith("blank: the map is all zero") for f in flags)
    (png,) = [o for o in out["outputs"] if o["name"] == "heatmap_png"]
    assert png["data"] == ["", ""]
    # a model with a finding: no flags, pictures drawn
    body["inputs"][0]["data"] = [png_b64(small_images[0])] * 2
    r = server.client.post("/v2/models/shapes/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert "flags" not in out["parameters"]
    (png,) = [o for o in out["outputs"] if o["name"] == "heatmap_png"]
    assert all(png["data"])


def test_v2_binary_outputs_of_a_blank_map(server):
    """As binary data (the Open Inference Protocol's extension), a picture not drawn is an empty
    BYTES element (a zero length prefix) and the flags are in the JSON part."""
    img = images(1, 0, 256, seed=3)[0]
    head = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                   "data": [png_b64(img)]}],
                       "outputs": [{"name": "heatmap_png"}, {"name": "heatmap"}],
                       "parameters": {"binary_data_output": True}}).encode()
    r = server.client.post("/v2/models/dead/infer", content=head,
                           headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    out = json.loads(r.content[:n])
    assert out["parameters"]["flags"][0].startswith("blank: the map is all zero")
    png, heat = out["outputs"]
    assert png["parameters"] == {"binary_data_size": 4}
    assert heat["parameters"] == {"binary_data_size": 4 * int(np.prod(heat["shape"]))}
    assert r.content[n:n + 4] == b"\0\0\0\0"
    assert np.ptp(np.frombuffer(r.content[n + 4:], "<f4")) == 0
