"""Servers for the tests: ``onnxviz serve`` as a subprocess on 127.0.0.1 and a free port.

One server per test module at most (each loads its models and warms them up, a few seconds);
ONNX Runtime runs one thread in the server and in the test process, so the two compute the same
floats and the answers can be compared bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from tests.serve.helpers import Served


@pytest.fixture(scope="module")
def start_server(tmp_path_factory):
    """``start_server(args)`` -> a :class:`Served`; every one is stopped after the module."""
    started = []

    def start(args):
        s = Served([str(a) for a in args], tmp_path_factory.mktemp("serve"))
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()


@pytest.fixture(scope="session")
def small_images() -> list[np.ndarray]:
    """Four photos at 96 px wide: distinct inputs, cheap to send."""
    import cv2
    from skimage import data

    out = []
    for img in (data.chelsea(), data.astronaut(), data.coffee(), data.rocket()):
        h, w = img.shape[:2]
        out.append(cv2.resize(img, (96, max(1, round(96 * h / w))), interpolation=cv2.INTER_AREA))
    return out
