"""The page's files and the endpoint it needs (``GET /v1/methods``), without a browser.

The method metadata is checked against the registry it is read from (options, defaults, ranges,
vocabularies) and against the server's own checks: a value the metadata's range excludes is
refused by ``:explain``, and the caps it lists are the ones the server enforces. The browser tests
are in ``test_page_browser.py``.
"""

from __future__ import annotations

import base64
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import onnxviz as ov
from onnxviz import viz
from onnxviz.explainers import registry
from onnxviz.imageio import decode_image
from onnxviz.explainers.ranges import Range, Words
from onnxviz.serve.limits import DEFAULT_CAPS, REFUSED
from tests.serve.helpers import png_b64

UI = Path(ov.__file__).parent / "serve" / "ui"
METHODS = "gradcam,occlusion,attention_rollout"


@pytest.fixture(scope="module")
def server(start_server, shapes_path, tmp_path_factory):
    return start_server([f"shapes={shapes_path}", "--method", METHODS])


def test_the_page_is_small_static_and_self_contained():
    files = sorted(p.name for p in UI.iterdir())
    assert files == ["app.js", "index.html", "style.css"]
    assert sum(p.stat().st_size for p in UI.iterdir()) < 100_000
    for p in UI.iterdir():
        text = p.read_text(encoding="utf-8")
        # nothing fetched from elsewhere: no absolute URL, no protocol-relative one
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), p.name
    html = (UI / "index.html").read_text(encoding="utf-8")
    assert '<script src="/ui/app.js">' in html and 'href="/ui/style.css"' in html
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for pattern in ("serve/ui/*.html", "serve/ui/*.js", "serve/ui/*.css"):
        assert pattern in pyproject  # package data: in the wheel


def test_root_is_the_page_for_browsers_and_health_for_probes(server):
    c = server.client
    assert c.get("/").json() == {"status": "alive"}
    assert c.get("/", headers={"accept": "application/json"}).json() == {"status": "alive"}
    page = c.get("/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.content == (UI / "index.html").read_bytes()
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = c.get(f"/ui/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert r.content == (UI / name).read_bytes()
    assert c.get("/ui/../pyproject.toml").status_code == 404
    assert c.get("/ui/secrets.txt").status_code == 404


def test_samples_are_the_skimage_photos(server):
    for name in ("chelsea", "astronaut", "coffee", "rocket"):
        r = server.client.get(f"/ui/samples/{name}.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert np.array_equal(decode_image(r.content), ov.read_image(f"skimage:{name}"))
    assert server.client.get("/ui/samples/camera.png").status_code == 404


def test_methods_endpoint_is_the_registry(server):
    got = server.client.get("/v1/methods").json()
    assert got["default"] == "gradcam"
    assert [m["name"] for m in got["methods"]] == METHODS.split(",")
    for m in got["methods"]:
        cls = registry.get(m["name"])
        assert m["summary"] == cls.summary and m["summary"]
        params = {k: p for k, p in cls.options().items() if k not in REFUSED}
        assert [o["name"] for o in m["options"]] == list(params)
        specs = cls.option_specs()
        for o in m["options"]:
            default = params[o["name"]].default
            assert o["default"] == (list(default) if isinstance(default, tuple) else default)
            spec = specs.get(o["name"])
            if isinstance(default, bool):
                assert o["type"] == "bool"
            elif isinstance(spec, Words):
                assert o["type"] == "word" and o["choices"] == list(spec.choices)
            elif isinstance(spec, Range):
                assert o["type"] == ("int" if spec.kind is int else "float")
                assert (o["low"], o["high"]) == (spec.low, spec.high)
                assert o["describe"] == spec.describe()
            if o["name"] in DEFAULT_CAPS:
                kind, bound = DEFAULT_CAPS[o["name"]]
                assert o["cap"] == {kind: bound}
    refuses = {m["name"]: m["refuses"]["shapes"] for m in got["methods"]}
    assert refuses["gradcam"] is None and refuses["occlusion"] is None
    assert "attention" in refuses["attention_rollout"]  # a CNN has no attention to roll out
    assert inspect.isclass(registry.get("attention_rollout"))


@pytest.mark.parametrize(("option", "value", "words"), [
    ("patch", 0, "patch must be an integer in [1, 65_536]"),  # outside the listed range
    ("stride", 2, "--cap"),  # inside the range, past the listed cap
    ("edges", "wrap", "edges must be one of"),  # outside the listed choices
])
def test_what_the_metadata_excludes_the_server_refuses(server, small_images, option, value,
                                                       words):
    r = server.client.post("/v1/models/shapes:explain", json={
        "instances": [png_b64(small_images[0])],
        "parameters": {"method": "occlusion", option: value}})
    assert r.status_code == 400 and words in r.json()["error"], r.text


def test_cmap_chooses_the_colormap_of_the_pngs(server, small_images, shapes_path):
    img = small_images[1]
    r = server.client.post("/v1/models/shapes:explain", json={
        "instances": [png_b64(img)], "parameters": {"cmap": "viridis"}})
    assert r.status_code == 200, r.text
    got = r.json()["explanations"][0]
    e = ov.explain(ov.load(shapes_path, threads=1), img, method="gradcam")
    b64 = lambda pic: base64.b64encode(viz.encode_png(pic)).decode("ascii")  # noqa: E731
    assert got["heatmap_png"] == b64(viz.apply_colormap(e.heatmap, "viridis", clip_percent=1))
    assert got["overlay_png"] == b64(viz.overlay(img, e.heatmap, alpha=0.4, cmap="viridis",
                                                 clip_percent=1))
    bad = server.client.post("/v1/models/shapes:explain", json={
        "instances": [png_b64(img)], "parameters": {"cmap": "rainbow"}})
    assert bad.status_code == 400 and "unknown colormap 'rainbow'" in bad.json()["error"]


def test_token_guards_the_api_not_the_page(start_server, shapes_path, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    s = start_server([f"shapes={shapes_path}", "--token-file", tmp_path / "token"])
    html = s.client.get("/", headers={"accept": "text/html"})
    assert html.status_code == 200 and b"<!DOCTYPE html>" in html.content
    assert s.client.get("/ui/app.js").status_code == 200
    assert s.client.get("/v1/methods").status_code == 401
    ok = s.client.get("/v1/methods", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["default"] == "gradcam"


def test_no_ui_serves_no_page(start_server, shapes_path):
    s = start_server([f"shapes={shapes_path}", "--no-ui"])
    assert s.client.get("/", headers={"accept": "text/html"}).json() == {"status": "alive"}
    assert s.client.get("/ui/app.js").status_code == 404
    assert s.client.get("/v1/methods").status_code == 200  # the API stays whole
