"""The binary tensor data extension of the Open Inference Protocol (issue 24), through the client
most people have, ``tritonclient.http``, and over raw HTTP for its framing: answers equal to
``ov.explain`` bit for bit, bad framing a one-line 400 and the server serving on."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib

import cv2
import numpy as np
import pytest

import onnxviz as ov
from onnxviz import viz

httpclient = pytest.importorskip("tritonclient.http")

INFER = "/v2/models/shapes/infer"
HEADER = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def server(start_server, shapes_path, effnet_path):
    return start_server([f"shapes={shapes_path}", f"effnet={effnet_path}", "--method",
                         "gradcam,saliency,occlusion", "--max-body-mb", "1"])


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=120)
    yield c
    c.close()


@pytest.fixture(scope="module")
def models(shapes_path, effnet_path):
    return {"shapes": ov.load(shapes_path, threads=1), "effnet": ov.load(effnet_path, threads=1)}


def png_file(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    assert ok
    return buf.tobytes()


def files_input(images, binary_data=True, encode=png_file):
    t = httpclient.InferInput("image", [len(images)], "BYTES")
    t.set_data_from_numpy(np.array([encode(i) for i in images], dtype=object),
                          binary_data=binary_data)
    return t


def same_bits(a, b) -> bool:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def bytes_tensor(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


# ---- tritonclient ----------------------------------------------------------------------------
def test_health_readiness_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("effnet") and not client.is_model_ready("nope")
    meta = client.get_server_metadata()
    assert meta["name"] == "onnxviz" and meta["version"] == ov.__version__
    assert "binary_tensor_data" in meta["extensions"]
    m = client.get_model_metadata("effnet")
    assert m["name"] == "effnet" and m["platform"] == "onnxviz"
    assert {"name": "heatmap", "datatype": "FP32", "shape": [-1, 224, 224]} in m["outputs"]
    assert m["parameters"]["methods"] == ["gradcam", "saliency", "occlusion"]


def test_client_defaults_binary_both_ways(client, models, chelsea):
    """``infer`` with tritonclient's defaults: the photo's PNG file as binary BYTES, and no
    outputs named, so ``binary_data_output: true``: every output comes back as raw bytes (this
    used to answer "400 the body is not valid JSON")."""
    r = client.infer("effnet", [files_input([chelsea])])
    e = ov.explain(models["effnet"], chelsea, method="gradcam")
    response = r.get_response()
    assert [o["name"] for o in response["outputs"]] == ["heatmap", "target", "label", "score"]
    sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in response["outputs"]}
    assert sizes["heatmap"] == 224 * 224 * 4 and sizes["target"] == 8 and sizes["score"] == 4
    assert all("data" not in o for o in response["outputs"])
    heat = r.as_numpy("heatmap")
    assert heat.dtype == np.float32 and heat.shape == (1, 224, 224)
    assert same_bits(heat[0], e.heatmap)
    assert r.as_numpy("target").tolist() == [e.target] == [285]
    assert r.as_numpy("label").tolist() == [b"Egyptian cat"]
    assert same_bits(r.as_numpy("score"), [e.score])


def test_binary_pixels_in_json_out(client, models, small_images):
    """UINT8 pixels [N, H, W, 3] sent as binary data, method and targets in ``parameters``,
    outputs asked for as JSON (``binary_data=False``)."""
    imgs = [np.ascontiguousarray(i[:64]) for i in small_images[:2]]  # one size: one tensor
    t = httpclient.InferInput("image", [2, *imgs[0].shape], "UINT8")
    t.set_data_from_numpy(np.stack(imgs))
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False)
               for n in ("heatmap", "target", "score")]
    r = client.infer("shapes", [t], outputs=outputs, request_id="px-1",
                     parameters={"method": "saliency", "target": [0, "no_rectangle"]})
    response = r.get_response()
    assert response["id"] == "px-1" and response["parameters"] == {"method": "saliency"}
    assert all("data" in o and "parameters" not in o for o in response["outputs"])
    want = ov.explain(models["shapes"], imgs, method="saliency", target=[0, 1])
    assert same_bits(r.as_numpy("heatmap"), np.stack([e.heatmap for e in want]))
    assert r.as_numpy("target").tolist() == [0, 1]
    assert same_bits(r.as_numpy("score"), [e.score for e in want])


def test_json_in_binary_pictures_out(client, models, small_images):
    """Base64 files as JSON text in, the two PNGs out as binary data: the files' own bytes
    (not base64), equal to the pictures ``onnxviz explain`` writes."""
    img = small_images[2]
    t = files_input([img], binary_data=False, encode=lambda i: base64.b64encode(png_file(i)))
    outputs = [httpclient.InferRequestedOutput("heatmap_png"),
               httpclient.InferRequestedOutput("overlay_png"),
               httpclient.InferRequestedOutput("label", binary_data=False)]
    r = client.infer("shapes", [t], outputs=outputs)
    e = ov.explain(models["shapes"], img, method="gradcam")
    assert r.as_numpy("heatmap_png").tolist() == [
        viz.encode_png(viz.apply_colormap(e.heatmap, "jet", clip_percent=1))]
    assert r.as_numpy("overlay_png").tolist() == [
        viz.encode_png(viz.overlay(img, e.heatmap, alpha=0.4, cmap="jet", clip_percent=1))]
    assert r.as_numpy("label").tolist() == [e.label]  # JSON text


def test_every_output_binary_with_method_options(client, models, small_images):
    """All six outputs as binary data, for several images sent as FP32 pixels, with a method's
    options: each equals the library's value."""
    imgs = [np.ascontiguousarray(i[-64:]) for i in small_images[1:3]]
    t = httpclient.InferInput("image", [2, *imgs[0].shape], "FP32")
    t.set_data_from_numpy(np.stack(imgs).astype(np.float32))
    names = ["heatmap", "target", "label", "score", "heatmap_png", "overlay_png"]
    params = {"method": "occlusion", "patch": [16, 16], "stride": 8, "fill": 0}
    r = client.infer("shapes", [t], outputs=[httpclient.InferRequestedOutput(n) for n in names],
                     parameters=params)
    assert [o["name"] for o in r.get_response()["outputs"]] == names
    want = ov.explain(models["shapes"], [i.astype(np.float32) for i in imgs],
                      method="occlusion", patch=(16, 16), stride=8, fill=0)
    assert same_bits(r.as_numpy("heatmap"), np.stack([e.heatmap for e in want]))
    assert r.as_numpy("target").tolist() == [e.target for e in want]
    assert r.as_numpy("label").tolist() == [e.label.encode() for e in want]
    assert same_bits(r.as_numpy("score"), [e.score for e in want])
    for got, e, img in zip(r.as_numpy("overlay_png"), want, imgs):
        assert got == viz.encode_png(viz.overlay(img.astype(np.float32), e.heatmap, alpha=0.4,
                                                 cmap="jet", clip_percent=1))
    for got, e in zip(r.as_numpy("heatmap_png"), want):
        assert got == viz.encode_png(viz.apply_colormap(e.heatmap, "jet", clip_percent=1))


def test_binary_base64_text_elements_and_a_second_input(client, models, small_images):
    """A BYTES element may be base64 text too; another binary input before the image takes its
    bytes first (the body's bytes go to the inputs in order)."""
    other = httpclient.InferInput("mask", [3], "INT32")
    other.set_data_from_numpy(np.array([7, 8, 9], np.int32))
    img = small_images[3]
    t = files_input([img], encode=lambda i: base64.b64encode(png_file(i)))
    r = client.infer("shapes", [other, t])
    e = ov.explain(models["shapes"], img, method="gradcam")
    assert same_bits(r.as_numpy("heatmap")[0], e.heatmap)


def test_an_error_reaches_the_client_as_its_exception(client, small_images):
    with pytest.raises(httpclient.InferenceServerException) as info:
        client.infer("shapes", [files_input(small_images[:1])],
                     parameters={"method": "gradcan"})
    assert info.value.status() == "400" and "unknown method 'gradcan'" in info.value.message()


# ---- raw HTTP: the framing itself --------------------------------------------------------------
def framed_request(header: dict, *tensors: bytes) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + b"".join(tensors), {HEADER: str(len(head))}


def test_raw_answer_framing(server, models, small_images):
    """Read without tritonclient: the JSON's length in the header, the content type, then the
    outputs' bytes in order, little-endian."""
    img = small_images[0]
    pixels = img.astype("<u1").tobytes()
    body, headers = framed_request(
        {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, *img.shape],
                     "parameters": {"binary_data_size": len(pixels)}}],
         "outputs": [{"name": "target"}, {"name": "heatmap", "parameters": {"binary_data": True}},
                     {"name": "label", "parameters": {"binary_data": True}}]},
        pixels)
    r = server.client.post(INFER, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers[HEADER])
    head = json.loads(r.content[:n])
    target, heat, label = head["outputs"]
    e = ov.explain(models["shapes"], img, method="gradcam")
    assert target["data"] == [e.target] and "parameters" not in target
    assert heat["parameters"] == {"binary_data_size": 64 * 64 * 4} and "data" not in heat
    got = np.frombuffer(r.content[n:n + 64 * 64 * 4], "<f4").reshape(heat["shape"])
    assert same_bits(got[0], e.heatmap)
    assert r.content[n + 64 * 64 * 4:] == bytes_tensor(e.label.encode())
    assert label["parameters"] == {"binary_data_size": 4 + len(e.label.encode())}


def test_json_answer_unless_asked(server, models, small_images):
    """A framed request without binary outputs asked for gets a plain JSON answer."""
    f = png_file(small_images[0])
    body, headers = framed_request(
        {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                     "parameters": {"binary_data_size": 4 + len(f)}}],
         "outputs": [{"name": "target"}]}, bytes_tensor(f))
    r = server.client.post(INFER, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json" and HEADER.lower() not in r.headers
    e = ov.explain(models["shapes"], small_images[0], method="gradcam")
    assert r.json()["outputs"][0]["data"] == [e.target]


def _image(size: int, **extra) -> dict:
    return {"name": "image", "datatype": "UINT8", "shape": [1, 4, 4, 3],
            "parameters": {"binary_data_size": size}, **extra}


PIXELS = bytes(range(48))

# (id, JSON header, bytes after it, the header's value (None: its true length), status, words)
FRAMING = [
    ("header-past-body", {"inputs": [_image(48)]}, PIXELS, "99999", 400, "the body has"),
    ("header-negative", {"inputs": [_image(48)]}, PIXELS, "-5", 400, "byte count >= 0"),
    ("header-not-a-number", {"inputs": [_image(48)]}, PIXELS, "ten", 400, "byte count >= 0"),
    ("header-cuts-the-json", {"inputs": [_image(48)]}, PIXELS, "10", 400, "not valid JSON"),
    ("header-not-an-object", [1, 2], b"", None, 400, "JSON object"),
    ("size-vs-shape", {"inputs": [_image(47)]}, PIXELS[:47], None, 400,
     "binary_data_size 47 does not match shape [1, 4, 4, 3] of UINT8: 48 x 1 = 48 bytes"),
    ("size-past-end", {"inputs": [_image(96)]}, PIXELS, None, 400, "runs past the body's end"),
    ("bytes-left-over", {"inputs": [_image(48)]}, PIXELS + b"xx", None, 400,
     "2 bytes after the inputs' binary data are not claimed"),
    ("size-negative", {"inputs": [_image(-48)]}, PIXELS, None, 400, "integer >= 0"),
    ("size-not-a-number", {"inputs": [_image("48")]}, PIXELS, None, 400, "integer >= 0"),
    ("data-and-size", {"inputs": [_image(48, data=[0] * 48)]}, PIXELS, None, 400,
     "both 'data' and parameters.binary_data_size"),
    ("bytes-prefix-cut", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                      "parameters": {"binary_data_size": 2}}]}, b"\x05\x00",
     None, 400, "length prefix is cut short"),
    ("bytes-element-past-end", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                            "parameters": {"binary_data_size": 6}}]},
     b"\x09\x00\x00\x00ab", None, 400, "runs past the tensor's 6 bytes"),
    ("bytes-count-vs-shape", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                          "parameters": {"binary_data_size": 6}}]},
     bytes_tensor(b"ab"), None, 400, "holds 1 elements but its shape [2] needs 2"),
    ("bytes-not-an-image", {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                        "parameters": {"binary_data_size": 9}}]},
     bytes_tensor(b"\x00\x01\x02\xff\xfe"), None, 400, "not a PNG, JPEG, BMP or WebP"),
    ("binary-data-not-bool", {"inputs": [_image(48)],
                              "outputs": [{"name": "heatmap", "parameters": {"binary_data": 1}}]},
     PIXELS, None, 400, "binary_data must be true or false"),
    ("binary-data-output-not-bool", {"inputs": [_image(48)],
                                     "parameters": {"binary_data_output": "yes"}},
     PIXELS, None, 400, "binary_data_output must be true or false"),
]


@pytest.mark.parametrize("header, tail, length, status, words", [c[1:] for c in FRAMING],
                         ids=[c[0] for c in FRAMING])
def test_bad_framing(server, header, tail, length, status, words):
    body, headers = framed_request(header, tail)
    if length is not None:
        headers[HEADER] = length
    r = server.client.post(INFER, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and "\n" not in r.text
    err = r.json()
    assert list(err) == ["error"] and words in err["error"], err


def test_binary_size_without_the_header(server):
    r = server.client.post(INFER, json={"inputs": [_image(48)]})
    assert r.status_code == 400
    assert f"no {HEADER} header" in r.json()["error"]


def test_body_limit_holds_for_framed_bodies(server):
    """``--max-body-mb 1`` counts the tensor bytes too (413, as for a JSON body)."""
    side = 600
    pixels = bytes(side * side * 3)  # 1.08 MB
    body, headers = framed_request({"inputs": [{"name": "image", "datatype": "UINT8",
                                                "shape": [1, side, side, 3],
                                                "parameters": {"binary_data_size": len(pixels)}}]},
                                   pixels)
    r = server.client.post(INFER, content=body, headers=headers)
    assert r.status_code == 413 and "limit" in r.json()["error"]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(client, models, small_images, algorithm):
    """tritonclient's request compression: the body is decompressed before the framing is
    read (the header counts the JSON's uncompressed bytes); the answer is not compressed, which
    the client reads too."""
    img = small_images[1]
    r = client.infer("shapes", [files_input([img])], request_compression_algorithm=algorithm,
                     response_compression_algorithm=algorithm)
    e = ov.explain(models["shapes"], img, method="gradcam")
    assert same_bits(r.as_numpy("heatmap")[0], e.heatmap)


# (id, Content-Encoding, body, status, words)
COMPRESSED = [
    ("gzip-bomb", "gzip", gzip.compress(bytes(3 << 20)), 413, "decompresses past"),
    ("deflate-bomb", "deflate", zlib.compress(bytes(3 << 20)), 413, "decompresses past"),
    ("not-gzip", "gzip", b"{plain text}", 400, "not valid gzip data"),
    ("gzip-cut-short", "gzip", gzip.compress(b'{"inputs": []}')[:-12], 400, "cut short"),
    ("unknown-encoding", "br", b"\x00", 400, "Content-Encoding 'br'"),
]


@pytest.mark.parametrize("encoding, body, status, words", [c[1:] for c in COMPRESSED],
                         ids=[c[0] for c in COMPRESSED])
def test_bad_compressed_bodies(server, encoding, body, status, words):
    r = server.client.post(INFER, content=body, headers={"content-encoding": encoding})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_still_serving_after_bad_framing(server, client, small_images):
    """Run after the bad requests: the same process answers, nothing was a 500."""
    assert server.alive()
    r = client.infer("shapes", [files_input(small_images[:1])])
    assert r.as_numpy("heatmap").shape == (1, 64, 64)
    text = server.metrics()
    assert 'code="500"' not in text and 'code="400"' in text and 'code="413"' in text
    assert "internal error" not in server.log.read_text()
