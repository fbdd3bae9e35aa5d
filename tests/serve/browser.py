"""A headless Chromium driven over the Chrome DevTools Protocol, for the tests of the page.

The protocol runs over a pipe (``--remote-debugging-pipe``: Chromium reads commands on its file
descriptor 3 and writes answers on 4, each a JSON message ending in a NUL byte), so no websocket
package and no open port are needed. Chromium is Debian's ``chromium``, as in
``tests/cli/test_report_chromium.py``: ``.ci/run`` installs it; in CI (``CI`` set) a missing
browser fails the test, on a developer machine it skips.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe", "--window-size=1400,1100"]


def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
    if path is None:
        msg = "chromium is not installed (apt-get install -y chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


class PageError(AssertionError):
    """The page threw, logged an error, or a wait ran out."""


class Browser:
    """One Chromium with one page (tab): ``evaluate`` JavaScript, ``wait`` for a condition,
    press keys, set a file input, take screenshots. ``errors`` collects the page's uncaught
    exceptions and ``console.error`` lines."""

    def __init__(self, tmp: Path):
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()

        def fds():  # Chromium's end of the pipes at 3 and 4, whatever numbers they had
            a = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}",
             "about:blank"], preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=open(tmp / "chromium.log", "wb"))  # noqa: SIM115 - closed with the process
        os.close(to_chrome)
        os.close(from_chrome)
        self._id, self._buf, self.events, self.errors = 0, b"", [], []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Page", "Runtime"):
            self.call(f"{domain}.enable")

    # ---- the protocol ----------------------------------------------------------------------
    def send(self, method: str, session: str | None = None, timeout: float = 60, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            reply = self._next(end - time.monotonic())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise PageError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def call(self, method: str, **params):
        return self.send(method, self.session, **params)

    def _next(self, timeout: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._read], [], [], max(timeout, 0))
            if not ready:
                raise PageError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise PageError("Chromium closed the pipe")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\0", 1)
        return json.loads(line)

    def _event(self, msg: dict) -> None:
        self.events.append(msg)
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.exceptionThrown":
            self.errors.append(p["exceptionDetails"].get("exception", {}).get(
                "description", p["exceptionDetails"].get("text")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description")))
                                        for a in p.get("args", [])))

    def pump(self, seconds: float = 0.05) -> None:
        """Read the events that arrived meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self._read], [], [], max(end - time.monotonic(), 0))
            if not ready:
                break
            self._buf += os.read(self._read, 1 << 20)
            while b"\0" in self._buf:
                line, self._buf = self._buf.split(b"\0", 1)
                self._event(json.loads(line))

    # ---- the page --------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'")

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise PageError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, condition: str, timeout: float = 120):
        """Wait until the JavaScript ``condition`` is truthy; its value."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(f"(() => {{ try {{ return {condition}; }} "
                                  f"catch (e) {{ return null; }} }})()")
            if value:
                return value
            self.pump(0.1)
        said = self.evaluate("document.querySelector('#message').textContent")
        raise PageError(f"waited {timeout:g} s for {condition}; the message says: {said}")

    def idle(self, timeout: float = 180) -> None:
        """Wait until the page has no request in flight (``aria-busy`` gone)."""
        self.pump(0.2)
        self.wait("!document.body.hasAttribute('aria-busy')", timeout)

    def press(self, key: str, code: int) -> None:
        """A key press on the focused element (``Enter`` 13, ``ArrowRight`` 39, ...)."""
        text = "\r" if key == "Enter" else ""
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                      windowsVirtualKeyCode=code, text=text if kind == "keyDown" else "")

    def set_file(self, selector: str, path: Path) -> None:
        obj = self.call("Runtime.evaluate", expression=f"document.querySelector('{selector}')")
        self.call("DOM.setFileInputFiles", files=[str(path)],
                  objectId=obj["result"]["objectId"])

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (PageError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)
