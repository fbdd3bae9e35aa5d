"""A bounded load test: 16 clients at once, a fixed count of requests, no errors, real batches.

Every answer is also checked against ``ov.explain`` on its own image: being batched with other
requests changes nothing, bit for bit.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

import onnxviz as ov
from tests.serve.helpers import png_b64

CLIENTS, PER_CLIENT = 16, 8


@pytest.fixture(scope="module")
def server(start_server, shapes_path):
    return start_server([shapes_path, "--max-batch", "8", "--max-wait-ms", "10"])


def batch_counts(metrics: str, model: str, method: str) -> tuple[int, int]:
    """(batches, batches of one image) from the batch-size histogram."""
    labels = f'method="{method}",model="{model}"'
    total = re.search(rf"onnxviz_batch_size_count\{{{labels}\}} (\S+)", metrics)
    ones = re.search(rf'onnxviz_batch_size_bucket\{{le="1.0",{labels}\}} (\S+)', metrics)
    if total is None:  # no batch yet
        return 0, 0
    return int(float(total.group(1))), int(float(ones.group(1)))


def test_sixteen_clients(server, shapes_path, small_images):
    model = ov.load(shapes_path, threads=1)
    want = [ov.explain(model, img, method="gradcam").heatmap for img in small_images]
    bodies = [{"instances": [png_b64(img)], "parameters": {"outputs": ["heatmap"]}}
              for img in small_images]
    before = batch_counts(server.metrics(), "shapes_cnn", "gradcam")

    def client(k: int) -> list[tuple[int, int, object]]:
        out = []
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for i in range(PER_CLIENT):
                n = (k + i) % len(bodies)
                r = c.post("/v1/models/shapes_cnn:explain", json=bodies[n])
                heat = (np.asarray(r.json()["explanations"][0]["heatmap"], np.float32)
                        if r.status_code == 200 else r.text)
                out.append((n, r.status_code, heat))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for rs in pool.map(client, range(CLIENTS)) for r in rs]

    assert len(results) == CLIENTS * PER_CLIENT
    errors = [(code, heat) for _, code, heat in results if code != 200]
    assert errors == []
    for n, _, heat in results:
        assert np.array_equal(heat, want[n])
    total, ones = (a - b for a, b in zip(batch_counts(server.metrics(), "shapes_cnn", "gradcam"),
                                         before))
    assert total < CLIENTS * PER_CLIENT, "every request ran alone"
    assert total - ones > 0, "no batch of more than one image"
    assert server.alive()
