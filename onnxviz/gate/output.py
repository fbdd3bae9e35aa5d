"""The gate's outputs for people and CI systems: a text table, JSON, JUnit XML (one test case per
image x method, one failure per rule that failed) and an HTML diff page per failing image
(baseline map, new map, their difference)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from ..errors import OnnxvizError
from ..results import table as text_table
from . import rules as _rules


def _short(v) -> str:
    if v.passed is None:
        return "-"
    mark = "ok" if v.passed else "FAIL"
    if v.rule == "prediction" or not math.isfinite(v.value):
        return mark
    return f"{mark} {v.value:.3f}"


def table(result) -> str:
    """One row per image and method, one column per rule; then the failing images per rule."""
    names = list(_rules.RULES)
    rows = [[c.name, c.method, *(_short(v) for v in c.verdicts),
             "FAIL" if c.failed else "pass"] for c in result.cases]
    out = [text_table(rows, ["image", "method", *names, "verdict"])]
    for rule, images in result.failures().items():
        out.append(f"FAIL {rule}: {', '.join(images)}")
    if result.skipped:
        out.append(f"not checked (not given): {', '.join(result.skipped)}")
    n_fail = sum(1 for c in result.cases if c.failed)
    out.append(f"{'FAILED' if n_fail else 'PASSED'}: {len(result.cases) - n_fail} of "
               f"{len(result.cases)} image x method cases hold every rule")
    return "\n".join(out)


def to_json(result, **meta) -> dict:
    return {**meta, "passed": result.passed, "failures": result.failures(),
            "skipped": result.skipped, "cases": [c.to_dict() for c in result.cases]}


def write_json(path, result, **meta) -> Path:
    return _write(path, json.dumps(to_json(result, **meta), indent=1))


def junit(result, suite: str = "onnxviz check") -> str:
    """JUnit XML: a test case per image and method (classname: the method), a ``failure`` per
    failed rule, ``skipped`` when no rule applied."""
    cases = result.cases
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)),
                      failures=str(sum(1 for c in cases if c.failed)))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                       failures=str(sum(1 for c in cases if c.failed)), errors="0",
                       skipped="0")
    for c in cases:
        tc = ET.SubElement(ts, "testcase", classname=f"onnxviz.{c.method}", name=c.name,
                           time=f"{c.new.get('timings', {}).get('total', 0.0):.3f}")
        for v in c.failed:
            f = ET.SubElement(tc, "failure", type=v.rule, message=f"{v.rule}: {v.message}")
            f.text = f"{c.name} {c.method}: {v.message}"
        out = "\n".join(f"{v.rule}: {'pass' if v.passed else 'n/a' if v.passed is None else 'FAIL'}"
                        f" - {v.message}" for v in c.verdicts)
        ET.SubElement(tc, "system-out").text = out
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path, result) -> Path:
    return _write(path, junit(result))


def _diverging(d: np.ndarray) -> np.ndarray:
    """[-1, 1] -> RGB: blue (less in the new map), white, red (more)."""
    d = np.clip(np.asarray(d, np.float32), -1, 1)[..., None]
    white = np.ones(3, np.float32)
    red, blue = np.array([0.8, 0.1, 0.1], np.float32), np.array([0.1, 0.3, 0.8], np.float32)
    rgb = np.where(d > 0, white + d * (red - white), white - d * (blue - white))
    return (rgb * 255).round().astype(np.uint8)


def _big(img: np.ndarray, side: int = 192) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    f = side / max(h, w)
    if f <= 1:
        return img
    return cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_NEAREST)


def diff_page(image_name: str, image: np.ndarray, cases: list) -> str:
    """One HTML page: for each failing method of an image, the three maps and the failed rules."""
    from ..viz import apply_colormap, data_uri, overlay
    from .check import difference

    def pic(a, alt):
        return f'<figure><img src="{data_uri(_big(a))}" alt="{html.escape(alt)}">' \
               f"<figcaption>{html.escape(alt)}</figcaption></figure>"

    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>onnxviz check: {html.escape(image_name)}</title><style>"
             "body{font-family:system-ui,sans-serif;margin:24px}figure{display:inline-block;"
             "margin:0 12px 12px 0}figcaption{font-size:.85em;color:#555}li.fail{color:#b00}"
             "</style></head><body>", f"<h1>{html.escape(image_name)}</h1>"]
    for c in cases:
        b, n = c.base["map"], c.new["map"]
        item = f" ({html.escape(c.base['item'])})" if c.base.get("item") else ""
        parts.append(f"<h2>{html.escape(c.method)}: target {c.base['target']} "
                     f"{html.escape(str(c.base['label']))}{item}</h2><ul>")
        for v in c.verdicts:
            cls = ' class="fail"' if v.passed is False else ""
            state = "FAIL" if v.passed is False else "n/a" if v.passed is None else "ok"
            parts.append(f"<li{cls}><b>{v.rule}</b> {state}: {html.escape(v.message)}</li>")
        parts.append("</ul>")
        parts.append(pic(overlay(image, b), "baseline map on the image"))
        parts.append(pic(apply_colormap(b), "baseline map"))
        parts.append(pic(apply_colormap(n), "new map"))
        parts.append(pic(_diverging(difference(b, n)),
                         "new - baseline (each scaled to 1): red more, blue less"))
    parts.append("</body></html>\n")
    return "".join(parts)


def write_diff_pages(folder, result, images: dict) -> list[Path]:
    """``<folder>/<image>.html`` for each image with a failing case; returns the paths."""
    folder = Path(folder)
    failing: dict[str, list] = {}
    for c in result.cases:
        if c.failed:
            failing.setdefault(c.image, []).append(c)
    paths = []
    if failing:
        folder.mkdir(parents=True, exist_ok=True)
    for name, cases in failing.items():
        paths.append(_write(folder / f"{name}.html", diff_page(name, images[name], cases)))
    return paths


def _write(path, text: str) -> Path:
    path = Path(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise OnnxvizError(f"cannot write {path}: {e.strerror or e}") from None
    return path
