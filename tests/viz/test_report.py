"""The HTML report is self-contained: every image an embedded PNG that decodes, nothing external."""

import base64
import re
from html.parser import HTMLParser

import cv2
import numpy as np

from onnxviz.explainers.base import Explanation
from onnxviz.viz import ReportImage, render_report, write_report


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag == "script":
            self.scripts += 1
        for k in ("href", "src"):
            if k in a and tag != "img":
                self.links.append(a[k])


def _expl(method, seed, **kw):
    rng = np.random.default_rng(seed)
    return Explanation(heatmap=rng.random((32, 32)).astype(np.float32), raw=None, target=281,
                       label=kw.pop("label", "tabby"), score=3.5, method=method,
                       params={"stride": 8, "fill": "gray"},
                       timings={"forward": 0.25, "total": 0.5},
                       **kw)


def test_report_embeds_every_picture_and_nothing_external(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    seg = (np.arange(32)[:, None] // 8) * 4 + np.arange(32)[None, :] // 8
    lime = _expl("lime", 3, extras={"segments": seg})
    lime.raw = np.linspace(-1, 1, 16)
    sec = ReportImage("cat.png", img, predictions=[("tabby", 0.6), ("<b>tiger</b>", 0.3)],
                      explanations=[_expl("gradcam", 1), _expl("occlusion", 2, label="<script>x"),
                                    lime],
                      failures={"cam": "the head is not GAP -> dense"})
    path = write_report(tmp_path / "sub" / "r.html", [sec],
                        model_summary={"file": "m.onnx", "classes": 1000},
                        settings={"occlusion": {"stride": 8}})
    text = path.read_text()
    p = _Collect()
    p.feed(text)
    # colour bar + original + 3 methods x (overlay, heatmap, mask)
    assert len(p.imgs) == 2 + 3 * 3
    for a in p.imgs:
        m = re.fullmatch(r"data:image/png;base64,([A-Za-z0-9+/=]+)", a["src"])
        assert m, a["src"][:40]
        dec = cv2.imdecode(np.frombuffer(base64.b64decode(m.group(1)), np.uint8), cv2.IMREAD_COLOR)
        assert dec is not None and dec.size > 0
        assert a.get("alt")
    assert p.links == [] and p.scripts == 0
    assert "<script>x" not in text and "&lt;script&gt;x" in text and "&lt;b&gt;tiger" in text
    assert "the head is not GAP -&gt; dense" in text
    for word in ("gradcam", "occlusion", "lime", "Timings", "m.onnx", "stride=8", "0.6000"):
        assert word in text


def test_overlay_in_report_is_at_most_max_side():
    img = np.zeros((600, 900, 3), np.uint8)
    sec = ReportImage("big", img, explanations=[_expl("saliency", 0)])
    text = render_report([sec], max_side=300)
    p = _Collect()
    p.feed(text)
    sizes = []
    for a in p.imgs:
        raw = base64.b64decode(a["src"].split(",", 1)[1])
        sizes.append(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR).shape[:2])
    assert (200, 300) in sizes and max(max(s) for s in sizes) <= 300
