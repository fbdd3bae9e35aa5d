"""Bearer-token auth, the queue limit (503 + Retry-After), the timeout (504) and the caps."""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.serve.helpers import png_b64

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def server(start_server, shapes_path, effnet_path, tmp_path_factory):
    token = tmp_path_factory.mktemp("token") / "token"
    token.write_text(TOKEN + "\n")
    s = start_server([f"shapes={shapes_path}", f"effnet={effnet_path}", "--method",
                      "gradcam,lime", "--token-file", token, "--max-queue", "6",
                      "--timeout", "0.5", "--cap", "num_samples=300"])
    s.auth = {"authorization": f"Bearer {TOKEN}"}
    return s


def test_token_required(server, chelsea):
    c = server.client
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        r = c.get("/v1/models", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "Bearer" in r.json()["error"]
    r = c.post("/v1/models/shapes:explain", json={"instances": [png_b64(chelsea)]})
    assert r.status_code == 401
    assert c.get("/metrics").status_code == 401
    assert c.get("/v1/models", headers=server.auth).json() == {"models": ["shapes", "effnet"]}
    assert c.get("/metrics", headers=server.auth).status_code == 200


def test_health_probes_need_no_token(server):
    for path in ("/", "/v2/health/live", "/v2/health/ready"):
        assert server.client.get(path).status_code == 200


def test_more_images_than_the_queue_holds_is_413(server, chelsea):
    body = {"instances": [png_b64(chelsea)] * 7}  # more than --max-queue 6: never fits
    r = server.client.post("/v1/models/shapes:explain", json=body, headers=server.auth)
    assert r.status_code == 413, r.text
    assert "--max-queue" in r.json()["error"]


def test_full_queue_is_503_with_retry_after(server, chelsea):
    """A slow request holds the only worker; six images wait behind it and fill the queue; the
    next request is turned away with 503 and Retry-After."""
    slow = {"instances": [png_b64(chelsea)],
            "parameters": {"method": "lime", "num_samples": 300}}
    tiny = png_b64(np.full((8, 8, 3), 50, np.uint8))
    post = functools.partial(server.client.post, headers=server.auth)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, "/v1/models/effnet:explain", json=slow)
        time.sleep(0.2)
        queued = pool.submit(post, "/v1/models/shapes:explain", json={"instances": [tiny] * 6})
        time.sleep(0.2)
        r = post("/v1/models/shapes:explain", json={"instances": [tiny]})
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "busy" in r.json()["error"]
        assert first.result().status_code == 504  # --timeout 0.5 s
        assert queued.result().status_code in (200, 504)
    # the requests that timed out no longer hold places in the queue
    assert post("/v1/models/shapes:explain", json={"instances": [tiny] * 6}).status_code in (
        200, 504)


def test_cap_names_its_flag(server, chelsea):
    body = {"instances": [png_b64(chelsea)],
            "parameters": {"method": "lime", "num_samples": 301}}
    r = server.client.post("/v1/models/shapes:explain", json=body, headers=server.auth)
    assert r.status_code == 400
    assert "num_samples must be at most 300" in r.json()["error"]


def test_timeout_is_504_and_the_server_goes_on(server, chelsea):
    # LIME with 300 samples runs EfficientNet 300 times: far more than --timeout 0.5 s
    body = {"instances": [png_b64(chelsea)],
            "parameters": {"method": "lime", "num_samples": 300}}
    r = server.client.post("/v1/models/effnet:explain", json=body, headers=server.auth)
    assert r.status_code == 504, r.text
    assert "--timeout" in r.json()["error"]
    assert server.alive()
    assert server.client.get("/v1/models/effnet", headers=server.auth).status_code == 200
