"""Bad requests get a 4xx and a one-line JSON error; the server keeps serving afterwards."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import numpy as np
import pytest

from tests.serve.helpers import png_b64


@pytest.fixture(scope="module")
def server(start_server, shapes_path):
    return start_server([f"shapes={shapes_path}", "--method", "gradcam,occlusion",
                         "--max-body-mb", "1"])


def bomb_png(side: int = 30000) -> str:
    """A valid 1-bit gray PNG of side x side pixels (about 110 kB of zeros, 900 megapixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    z = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    rows = 1000
    parts = [z.compress(row * rows) for _ in range(side // rows)] + [z.flush()]
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


GOOD = png_b64(np.full((40, 50, 3), 200, np.uint8))
EXPLAIN = "/v1/models/shapes:explain"

# (id, path, body: dict | bytes, status, words in the error)
CASES = [
    ("not-json", EXPLAIN, b"{instances: nope", 400, "not valid JSON"),
    ("not-an-object", EXPLAIN, [1, 2], 400, "JSON object"),
    ("no-instances", EXPLAIN, {"instances": []}, 400, "instances"),
    ("bad-base64", EXPLAIN, {"instances": ["@@not base64@@"]}, 400, "base64"),
    ("not-an-image", EXPLAIN, {"instances": [b64(b"hello, I am text")]}, 400, "not a PNG"),
    ("truncated-png", EXPLAIN, {"instances": [b64(base64.b64decode(GOOD)[:60])]}, 400, "decode"),
    ("bomb-30000x30000", EXPLAIN, {"instances": [bomb_png()]}, 413, "30000x30000"),
    ("ragged-pixels", EXPLAIN, {"instances": [[[1, 2, 3], [4, 5]]]}, 400, "instances[0]"),
    ("text-pixels", EXPLAIN, {"instances": [[["a", "b"], ["c", "d"]]]}, 400, "numbers"),
    ("unknown-method", EXPLAIN, {"instances": [GOOD], "parameters": {"method": "gradcan"}},
     400, "unknown method 'gradcan'"),
    ("method-not-served", EXPLAIN, {"instances": [GOOD], "parameters": {"method": "lime"}},
     400, "not served"),
    ("unknown-layer", EXPLAIN, {"instances": [GOOD], "parameters": {"layer": "features.relu9"}},
     400, "unknown layer"),
    ("unknown-label", EXPLAIN, {"instances": [GOOD], "parameters": {"target": "dog"}},
     400, "unknown label"),
    ("target-out-of-range", EXPLAIN, {"instances": [GOOD], "parameters": {"target": 7}},
     400, "out of range"),
    ("targets-count", EXPLAIN, {"instances": [GOOD], "parameters": {"target": [0, 1]}},
     400, "2 targets"),
    ("bad-option-value", EXPLAIN,
     {"instances": [GOOD], "parameters": {"method": "occlusion", "stride": "abc"}},
     400, "--stride"),
    ("option-of-another-method", EXPLAIN,
     {"instances": [GOOD], "parameters": {"stride": 8}}, 400, "has no option"),
    ("past-a-cap", EXPLAIN,
     {"instances": [GOOD], "parameters": {"method": "occlusion", "stride": 1}}, 400, "--cap"),
    ("server-file-option", EXPLAIN,
     {"instances": [GOOD], "parameters": {"segments": "/etc/passwd"}}, 400, "over HTTP"),
    ("parameters-not-object", EXPLAIN, {"instances": [GOOD], "parameters": [1]}, 400,
     "'parameters'"),
    ("unknown-output", EXPLAIN, {"instances": [GOOD], "parameters": {"outputs": ["mask"]}},
     400, "unknown output"),
    ("top-zero", "/v1/models/shapes:predict", {"instances": [GOOD], "parameters": {"top": 0}},
     400, "'top'"),
    ("unknown-model", "/v1/models/nope:explain", {"instances": [GOOD]}, 404, "unknown model"),
    ("unknown-v2-model", "/v2/models/nope/infer", {"inputs": []}, 404, "unknown model"),
    ("unknown-verb", "/v1/models/shapes:frobnicate", {"instances": [GOOD]}, 404, "verb"),
    ("oversize-body", EXPLAIN, {"instances": ["A" * (1 << 20)]}, 413, "limit"),
    ("v2-no-inputs", "/v2/models/shapes/infer", {"inputs": "x"}, 400, "'inputs'"),
    ("v2-count-mismatch", "/v2/models/shapes/infer",
     {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [1, 2]}]},
     400, "needs 12"),
    ("v2-datatype", "/v2/models/shapes/infer",
     {"inputs": [{"name": "image", "datatype": "FP99", "shape": [1], "data": [1]}]},
     400, "datatype"),
    ("v2-huge-pixels", "/v2/models/shapes/infer",
     {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 30000, 30000, 3],
                  "data": []}]}, 400, "needs"),
    ("v2-unknown-output", "/v2/models/shapes/infer",
     {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [GOOD]}],
      "outputs": [{"name": "mask"}]}, 400, "unknown output"),
]


@pytest.mark.parametrize("path, body, status, words", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_request(server, path, body, status, words):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = server.client.post(path, content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert "\n" not in r.text
    err = r.json()
    assert list(err) == ["error"] and words in err["error"], err


def test_wrong_http_method(server):
    r = server.client.get("/v2/models/shapes/infer")
    assert r.status_code == 405 and list(r.json()) == ["error"]


@pytest.mark.parametrize("verb", ["explain", "predict"])
def test_get_on_a_v1_verb_is_405(server, verb):
    """docs/serving.md promises 405 for a wrong HTTP method; GET NAME:explain was a 404."""
    r = server.client.get(f"/v1/models/shapes:{verb}")
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "POST" and "takes POST" in r.json()["error"]
    assert server.client.get("/v1/models/shapes:nothing").status_code == 404


def test_still_serving_after_bad_requests(server):
    """Run after the bad requests: the same process answers, nothing was a 500."""
    assert server.alive()
    r = server.client.post(EXPLAIN, json={"instances": [GOOD]})
    assert r.status_code == 200 and r.json()["explanations"][0]["method"] == "gradcam"
    text = server.metrics()
    assert 'code="500"' not in text
    assert 'code="400"' in text and 'code="413"' in text
    assert "internal error" not in server.log.read_text()
