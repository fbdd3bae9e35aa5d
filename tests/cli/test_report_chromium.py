"""``onnxviz demo`` end to end, and its report rendered in headless Chromium.

The demo runs as a user runs it (a subprocess, the bundled EfficientNet-Lite0, every method). Its
page is opened in Debian's ``chromium``: every image must decode, no error event may fire and
nothing may reach the console (the page has no script of its own, so any console line is a
problem); no card may be empty and every image must be at least 128 px wide on screen. A screenshot is kept in ``test-artifacts/``. A control page with a broken image, a
``console.error``, a tiny image and an empty card shows that these checks do catch failures.

Chromium is installed by ``.ci/run``; in CI (``CI`` set) a missing browser fails the test, on a
developer machine it skips.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import onnxviz as ov
from tests.serve.browser import chromium_path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]

# Injected into a copy of the page: record error events (resource failures included, via capture)
# and console.error calls, then on load write what was seen into the DOM for --dump-dom.
HEAD_PROBE = """<script>window.__errs=[];
window.addEventListener('error',function(e){var t=e.target||{};
__errs.push(String(e.message||('failed to load '+(t.alt||t.src||t.tagName||'?')))
.slice(0,80))},true);
var __ce=console.error;console.error=function(){__errs.push([].join.call(arguments,' '));
__ce.apply(console,arguments)};</script>"""
BODY_PROBE = """<script>window.addEventListener('load',function(){
var imgs=[].slice.call(document.images);
var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)})
.map(function(i){return i.alt});
var narrow=imgs.filter(function(i){return i.getBoundingClientRect().width<MIN_WIDTH})
.map(function(i){return i.alt+' '+Math.round(i.getBoundingClientRect().width)+'px'});
var cards=[].slice.call(document.querySelectorAll('.card'));
var empty=cards.filter(function(c){return !c.querySelector('img')||!c.textContent.trim()})
.map(function(c){return c.getAttribute('data-method')||'?'});
var d=document.createElement('pre');d.id='onnxviz-check';
d.textContent='ONNXVIZ-CHECK '+JSON.stringify({n:imgs.length,bad:bad,errors:window.__errs,
narrow:narrow,cards:cards.length,empty:empty});
document.body.appendChild(d)});</script>""".replace("MIN_WIDTH", "128")


def chromium(args, tmp: Path, timeout=120):
    exe = chromium_path()
    cmd = [exe, *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def probe(html_path: Path, tmp: Path) -> tuple[dict, list[str]]:
    """Open a probed copy of the page: (what the page saw, console lines from Chromium's log)."""
    text = html_path.read_text(encoding="utf-8")
    probed = tmp / "probed.html"
    probed.write_text(text.replace("<head>", "<head>" + HEAD_PROBE, 1)
                      .replace("</body>", BODY_PROBE + "</body>", 1), encoding="utf-8")
    r = chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                  "--window-size=1400,1000", "--dump-dom", probed.as_uri()], tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"ONNXVIZ-CHECK (\{.*?\})</pre>", r.stdout)
    assert m, "the page never finished loading: " + r.stdout[-500:]
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    return json.loads(m.group(1)), console


def test_probe_catches_broken_images_and_console_errors(tmp_path):
    good = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
            "RU5ErkJggg==")
    page = tmp_path / "control.html"
    page.write_text(f'<!DOCTYPE html><html><head><title>c</title></head><body>'
                    f'<div class="card" data-method="full"><h3>full</h3>'
                    f'<img alt="good" style="width:200px" src="data:image/png;base64,{good}">'
                    f'<img alt="tiny" src="data:image/png;base64,{good}"></div>'
                    f'<div class="card" data-method="empty"></div>'
                    f'<img alt="broken" src="data:image/png;base64,AAAA">'
                    f'<script>console.error("boom")</script></body></html>')
    seen, console = probe(page, tmp_path)
    assert seen["n"] == 3 and seen["bad"] == ["broken"]
    assert [n.split()[0] for n in seen["narrow"]] == ["tiny", "broken"]
    assert seen["cards"] == 2 and seen["empty"] == ["empty"]
    assert "boom" in seen["errors"] and any("failed to load broken" in e for e in seen["errors"])
    assert any('"boom"' in ln for ln in console)


@pytest.mark.slow
def test_demo_report_renders_in_chromium(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "onnxviz.cli", "demo", "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "warning" not in r.stderr, r.stderr
    report = Path(r.stdout.strip())
    assert report == out / "report.html" and report.is_file()
    assert cv2.imread(str(out / "compare.png")) is not None

    text = report.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//|file:)""", text)
    srcs = re.findall(r'<img src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    from onnxviz.explainers import get

    bundled = ov.load(Path(__file__).resolve().parents[2] / "onnxviz" / "data" / "models"
                     / "efficientnet_lite0.onnx")
    for m in ov.METHODS:  # every method that applies ran: a card each, none marked as failed
        ran = f'<div class="card" data-method="{m}">' in text
        assert ran == (get(m).applies_to(bundled) is None), m
    assert "attention_rollout" not in text  # a CNN: "all" skips the attention methods
    assert 'class="card failed"' not in text
    assert "Top-5 prediction" in text and "tabby" in text and "Timings" in text

    seen, console = probe(report, tmp_path)
    assert seen["n"] == len(srcs) and seen["bad"] == [] and seen["errors"] == [], seen
    assert seen["cards"] >= 14 and seen["empty"] == [], seen  # every card has a picture and text
    assert seen["narrow"] == [], seen  # every image at least 128 px wide on screen
    assert console == [], console

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo_report.png"
    shot.unlink(missing_ok=True)
    r = chromium([f"--screenshot={shot}", "--window-size=1400,3000", report.as_uri()], tmp_path)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img.shape[:2] == (3000, 1400) and float(np.std(img)) > 20  # a page, not a blank
