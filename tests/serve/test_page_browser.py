"""The page of ``onnxviz serve`` driven in a real headless Chromium (tests/serve/browser.py).

What a person does: load a bundled photo, read the top class, click a second class, run two
methods, see two overlays, move the opacity slider (by keyboard), change the colormap; a refused
option (by the page and by the server), a broken file and a too-large image each show one
readable message and the server keeps serving; the token mode; a detector's boxes drawn and the
clicked one explained. The pictures in the page are the API's PNGs byte for byte: each card's
request is sent again from Python and the answers compared. Screenshots go to the test's tmp
folder.
"""

from __future__ import annotations

import base64

import numpy as np
import onnx
import pytest

import onnxviz as ov
from onnxviz.explainers import registry
from tests.detection.test_tasks import detector, scene, segmenter
from tests.serve.browser import Browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(start_server, effnet_path):
    # astronaut (512 x 512) is past --max-pixels; chelsea (451 x 300) is not
    return start_server([f"effnet={effnet_path}", "--method", "gradcam,saliency,occlusion",
                         "--max-pixels", "200000"])


@pytest.fixture()
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.close()


def cards(b: Browser) -> list[dict]:
    """Each card (newest first): its method, caption, request, the PNGs its images show."""
    return b.evaluate("""[...document.querySelectorAll('.card')].map((c) => ({
        method: c.dataset.method, caption: c.querySelector('figcaption').textContent,
        request: c.request, heat: c.querySelector('img.heat').src,
        overlay: c.querySelector('img.overlay').src,
        shown: [...c.querySelectorAll('.stack img')].filter((i) => !i.hidden)
                 .map((i) => i.className),
        opacity: c.querySelector('img.heat').style.opacity,
        alts: [...c.querySelectorAll('img')].map((i) => i.alt),
        cli: c.querySelector('pre.cli').textContent,
        python: c.querySelector('pre.python').textContent}))""")


def message(b: Browser) -> str:
    return b.evaluate("document.querySelector('#message').hidden ? '' : "
                      "document.querySelector('#message').textContent")


def api_pngs(server, request: dict) -> dict:
    r = server.client.post("/v1/models/effnet:explain", json=request)
    assert r.status_code == 200, r.text
    return r.json()["explanations"][0]


def test_explore_a_photo(server, browser, tmp_path, effnet_path):
    b = browser
    b.open(server.url + "/")
    b.idle()
    assert b.evaluate("document.querySelector('#model').value") == "effnet"
    # keyboard: focus the chelsea sample and press Enter
    b.evaluate("document.querySelector('[data-sample=chelsea]').focus()")
    b.press("Enter", 13)
    b.wait("document.querySelectorAll('#predictions button').length === 5")
    b.idle()
    rows = b.evaluate("[...document.querySelectorAll('#predictions button')].map("
                      "(x) => [x.children[0].textContent, x.getAttribute('aria-pressed')])")
    assert rows[0] == ["Egyptian cat (285)", "true"] and rows[1][0] == "tiger cat (282)"
    # click the second class: explained at once with the default method
    b.evaluate("document.querySelectorAll('#predictions button')[1].click()")
    b.wait("document.querySelectorAll('.card figcaption').length === 1")
    b.idle()
    # a second method
    b.evaluate("const s = document.querySelector('#method-name'); s.value = 'saliency';"
               "s.dispatchEvent(new Event('change'))")
    summary = b.evaluate("document.querySelector('#method-summary').textContent")
    assert summary == registry.get("saliency").summary
    assert b.evaluate("[...document.querySelectorAll('#options [name]')].map((x) => x.name)") == \
        list(registry.get("saliency").options())
    b.evaluate("document.querySelector('#explain').click()")
    b.wait("document.querySelectorAll('.card figcaption').length === 2")
    b.idle()
    got = cards(b)
    assert [c["method"] for c in got] == ["saliency", "gradcam"]
    for c in got:
        assert "tiger cat (282)" in c["caption"] and "ms (server)" in c["caption"]
        assert c["shown"] == ["overlay"]  # at 0.4: the API's overlay PNG itself
        assert all(a for a in c["alts"])
        assert c["cli"].startswith("onnxviz explain effnet.onnx skimage:chelsea --method "
                                   f"{c['method']} --target 282")
        assert f'method="{c["method"]}", target=282' in c["python"]
    b.screenshot(tmp_path / "page-two-methods.png")

    # the pictures are the API's PNGs, byte for byte, for the same request
    for c in got:
        api = api_pngs(server, c["request"])
        assert c["heat"] == "data:image/png;base64," + api["heatmap_png"]
        assert c["overlay"] == "data:image/png;base64," + api["overlay_png"]
    # ... and the NPY download is the API's float32 heatmap
    npy = b.evaluate("""(async () => { const a = [...document.querySelectorAll('.card')][1]
        .querySelector('a[download$=".heatmap.npy"]'); const buf = await (await fetch(a.href))
        .arrayBuffer(); let s = ''; new Uint8Array(buf).forEach((x) => s += String
        .fromCharCode(x)); return btoa(s); })()""")
    import io
    heat = np.load(io.BytesIO(base64.b64decode(npy)))
    want = np.asarray(api_pngs(server, {**got[1]["request"]})["heatmap"], np.float32)
    assert heat.dtype == np.float32 and np.array_equal(heat, want)
    # the Python the card offers gives the same map
    e = ov.explain(ov.load(effnet_path, threads=1), ov.read_image("skimage:chelsea", exact=True),
                   method="gradcam", target=282)
    assert np.array_equal(e.heatmap.astype(np.float32), want)

    # the JSON record download: the answer's fields, without the pictures
    record = b.evaluate("""(async () => { const a = [...document.querySelectorAll('.card')][1]
        .querySelector('a[download$=".json"]'); return await (await fetch(a.href)).json(); })()""")
    assert record["method"] == "gradcam" and record["target"] == 282
    assert not {"heatmap", "heatmap_png", "overlay_png"} & set(record)
    # copy buttons say what they did
    b.evaluate("[...document.querySelectorAll('.card button')].find("
               "(x) => x.textContent === 'copy as CLI command').click()")
    b.wait("document.querySelector('#message').textContent.includes('copied')")
    assert message(b) == "CLI command copied to the clipboard"

    # the slider, by keyboard: away from 0.4 the heatmap PNG lies over the photo
    b.evaluate("document.querySelector('#opacity').focus()")
    b.press("ArrowRight", 39)
    b.pump(0.2)
    moved = cards(b)
    assert b.evaluate("document.querySelector('#opacity-value').textContent") == "0.45"
    assert all(c["shown"] == ["photo", "heat"] and c["opacity"] == "0.45" for c in moved)
    b.screenshot(tmp_path / "page-slider.png")

    # a colour-blind-safe colormap: the cards are asked again with it
    b.evaluate("const m = document.querySelector('#cmap'); m.value = 'viridis';"
               "m.dispatchEvent(new Event('change'))")
    b.wait("[...document.querySelectorAll('.card')].every((c) => c.request && "
           "c.request.parameters.cmap === 'viridis')")
    b.idle()
    for c in cards(b):
        assert c["heat"] == "data:image/png;base64," + api_pngs(server, c["request"])[
            "heatmap_png"]
    assert b.errors == []


def test_refusals_and_bad_files_are_one_message(server, browser, tmp_path):
    b = browser
    b.open(server.url + "/")
    b.idle()
    b.evaluate("document.querySelector('[data-sample=chelsea]').click()")
    b.wait("document.querySelectorAll('#predictions button').length === 5")
    b.idle()
    b.evaluate("const s = document.querySelector('#method-name'); s.value = 'occlusion';"
               "s.dispatchEvent(new Event('change'))")
    # refused by the page (outside the registry's range)...
    b.evaluate("document.querySelector('#opt-patch').value = '0';"
               "document.querySelector('#explain').click()")
    b.idle()
    assert message(b).startswith("patch must be an integer in [1, 65_536]")
    assert b.evaluate("document.activeElement.id") == "opt-patch"
    # ... and by the server (inside the range, past this server's cap)
    b.evaluate("document.querySelector('#opt-patch').value = '';"
               "document.querySelector('#opt-stride').value = '2';"
               "document.querySelector('#explain').click()")
    b.idle()
    said = message(b)
    assert "stride" in said and "--cap" in said and "\n" not in said
    assert b.evaluate("document.querySelectorAll('.card').length") == 0
    b.screenshot(tmp_path / "page-refused.png")
    # a broken file
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not an image")
    b.set_file("#file", broken)
    b.wait("document.querySelector('#message').textContent.includes('not a PNG')")
    b.idle()
    assert message(b) == ("instances[0]: not a PNG, JPEG, BMP or WebP file (the formats this "
                          "server reads)")
    # a photo past --max-pixels
    b.evaluate("document.querySelector('[data-sample=astronaut]').click()")
    b.wait("document.querySelector('#message').textContent.includes('max-pixels')")
    assert "262144 pixels" in message(b) or "512x512" in message(b)
    b.screenshot(tmp_path / "page-too-large.png")
    assert server.alive()
    assert b.errors == []


def test_token_field(start_server, browser, shapes_path, tmp_path):
    (tmp_path / "token").write_text("s3cret")
    s = start_server([f"shapes={shapes_path}", "--token-file", tmp_path / "token"])
    b = browser
    b.open(s.url + "/")
    b.idle()
    assert message(b).startswith("401: enter the server's token above.")
    b.evaluate("const t = document.querySelector('#token'); t.value = 's3cret';"
               "t.dispatchEvent(new Event('change'))")
    b.wait("document.querySelector('#model').value === 'shapes'")
    b.idle()
    assert message(b) == ""
    # an image dropped on the box, then one pasted: each is predicted
    for event, selector in (("DragEvent('drop', {dataTransfer: dt, bubbles: true, "
                             "cancelable: true})", "#drop"),
                            ("ClipboardEvent('paste', {clipboardData: dt, bubbles: true})",
                             "body")):
        b.evaluate(f"""(async () => {{ const blob = await (await fetch(
            '/ui/samples/coffee.png')).blob(); const dt = new DataTransfer();
            dt.items.add(new File([blob], 'my coffee.png', {{type: 'image/png'}}));
            document.querySelector('{selector}').dispatchEvent(new {event}); }})()""")
        b.wait("document.querySelector('#photo').alt.endsWith('my coffee.png')")
        b.wait("document.querySelectorAll('#predictions button').length > 0")
        b.idle()
        b.evaluate("document.querySelector('#photo').alt = ''")
    b.evaluate("document.querySelector('#explain').click()")
    b.wait("document.querySelectorAll('.card figcaption').length === 1")
    (card,) = cards(b)
    assert "'my coffee.png'" in card["cli"]  # quoted for the shell
    assert b.errors == []


def test_detector_boxes_drawn_and_the_clicked_one_explained(start_server, browser, tmp_path):
    path = tmp_path / "cells.onnx"
    onnx.save(detector(), path)
    photo = tmp_path / "scene.png"
    import cv2

    cv2.imwrite(str(photo), scene()[..., ::-1])
    onnx.save(segmenter(), tmp_path / "seg.onnx")
    s = start_server([f"cells={path}", f"seg={tmp_path / 'seg.onnx'}", "--method",
                      "saliency,odam"])
    b = browser
    b.open(s.url + "/")
    b.idle()
    b.set_file("#file", photo)
    b.wait("document.querySelectorAll('#boxes .box').length === 2")
    b.idle()
    labels = b.evaluate("[...document.querySelectorAll('#boxes .box')].map("
                        "(x) => x.getAttribute('aria-label'))")
    assert labels[0].startswith("box 0: red") and labels[1].startswith("box 1: blue")
    # the blue box sits where the detector put it, in the photo's pixels
    rect = b.evaluate("(() => { const p = document.querySelector('#photo').getBoundingClientRect();"
                      " const r = document.querySelector('#box-1').getBoundingClientRect();"
                      " return [(r.left - p.left) / p.width, (r.top - p.top) / p.height]; })()")
    assert rect == pytest.approx([72 / 96, 40 / 64], abs=0.02)
    b.evaluate("document.querySelector('#box-1').click()")
    b.wait("document.querySelectorAll('.card figcaption').length === 1")
    b.idle()
    (card,) = cards(b)
    assert "box 1: blue" in card["caption"] and card["request"]["parameters"]["target"] == 1
    r = s.client.post("/v1/models/cells:explain", json=card["request"])
    assert card["overlay"] == "data:image/png;base64," + r.json()["explanations"][0][
        "overlay_png"]
    assert card["cli"].startswith("onnxviz explain cells.onnx") and "--target 1" in card["cli"]
    assert "[0]" in card["python"]
    assert card["request"]["parameters"]["score_threshold"] == 0.25
    b.screenshot(tmp_path / "page-detector.png")

    # the segmenter: regions coloured on the photo, the clicked one explained
    b.evaluate("const m = document.querySelector('#model'); m.value = 'seg';"
               "m.dispatchEvent(new Event('change'))")
    b.wait("!document.querySelector('#regions').hidden")
    b.idle()
    assert b.evaluate("document.querySelectorAll('#boxes .box').length") == 0
    regions = b.evaluate("[...document.querySelectorAll('#predictions button')].map("
                         "(x) => x.children[0].textContent)")
    assert regions == ["red region (0)", "blue region (2)"]
    b.evaluate("document.querySelectorAll('#predictions button')[1].click()")
    b.wait("document.querySelectorAll('.card figcaption').length === 1")
    b.idle()
    (card,) = cards(b)
    assert "blue region" in card["caption"] and card["request"]["parameters"]["target"] == 2
    r = s.client.post("/v1/models/seg:explain", json=card["request"])
    assert card["overlay"] == "data:image/png;base64," + r.json()["explanations"][0][
        "overlay_png"]
    b.screenshot(tmp_path / "page-segmenter.png")
    assert b.errors == []
