"""Helpers of the server tests: a server subprocess, images as base64 PNG text."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]


class Served:
    """A running server on a free port of its own choosing (``--port 0``, read back from its
    ``ready`` log line): its base URL, its stderr log and an httpx client."""

    def __init__(self, args: list[str], tmp: Path):
        self.log = Path(tempfile.mkstemp(prefix="serve-", suffix=".log", dir=tmp)[1])
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self._err = open(self.log, "wb")  # noqa: SIM115 - the server's stderr until stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "onnxviz.cli", "serve", *args, "--port", "0",
             "--threads", "1"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self._err)
        self.port = self._wait_ready()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)
        assert self.client.get("/v2/health/ready").json() == {"ready": True}

    def _wait_ready(self, seconds: float = 240) -> int:
        """The port of the ``ready`` line (models load and warm up first: slow on a busy box)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for line in self.log.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # not JSON, or a line still being written
                    continue
                if isinstance(record, dict) and record.get("event") == "ready":
                    return int(record["port"])
            if self.proc.poll() is not None:
                raise RuntimeError(f"onnxviz serve exited {self.proc.returncode}:\n"
                                   + self.log.read_text())
            time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("onnxviz serve did not become ready:\n" + self.log.read_text())

    def alive(self) -> bool:
        return self.proc.poll() is None and self.client.get("/v2/health/live").json() == {
            "live": True}

    def metrics(self) -> str:
        return self.client.get("/metrics", headers=getattr(self, "auth", {})).text

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()


def png_b64(img: np.ndarray) -> str:
    """An RGB image as base64 PNG text (lossless: the server decodes the same pixels)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    assert ok
    return base64.b64encode(buf.tobytes()).decode("ascii")


def b64_png_pixels(text: str) -> np.ndarray:
    import cv2

    buf = np.frombuffer(base64.b64decode(text), np.uint8)
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)[..., ::-1]
