"""One self-contained HTML page: the image, the top-5 prediction, every method's overlay side by
side, timings and a model summary. Images are embedded as base64 PNG, CSS is inline and there is no
script or external resource, so the file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import OnnxvizError
from .colormaps import apply_colormap, colorbar
from .lime import lime_image
from .masks import apply_mask
from .overlay import check_image, overlay
from .png import data_uri


@dataclass
class ReportImage:
    """What the report shows for one input image.

    Attributes:
        name: file name or description of the image.
        image: the original RGB ``uint8`` image.
        predictions: top classes as ``(label, probability)`` pairs, best first.
        explanations: :class:`onnxviz.Explanation` objects, one per method.
        failures: ``{method: error message}`` for methods that could not run on this image.
    """

    name: str
    image: np.ndarray
    predictions: list = field(default_factory=list)
    explanations: list = field(default_factory=list)
    failures: dict = field(default_factory=dict)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;
background:#fafafa}
h1{font-size:1.5em;margin-bottom:4px}
h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid #ccc}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;max-width:420px}
.card img{display:block;max-width:100%;height:auto;image-rendering:pixelated}
.card h3{margin:0 0 4px 0;font-size:1em}.card .meta{font-size:.8em;color:#555}
.card.failed{border-color:#d88;background:#fff5f5}
.card .what{font-size:.8em;color:#333;margin:0 0 4px 0}.bad{color:#b00}
.bar{display:inline-block;height:10px;background:#4a7bd0}
code{font-size:.85em;word-break:break-all}
.cbar{display:flex;align-items:center;gap:6px;font-size:.8em;color:#555}
"""


#: Smallest side of a picture on the page; smaller maps are enlarged by a whole factor.
MIN_SIDE = 160


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    s = max(h, w)
    if s < MIN_SIDE:  # a 28x28 or 64x64 model's maps: enlarged with visible pixels, not blurred
        f = -(-MIN_SIDE // s)
        return cv2.resize(image, (w * f, h * f), interpolation=cv2.INTER_NEAREST)
    if s <= max_side:
        return image
    f = max_side / s
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _img(image: np.ndarray, alt: str, max_side: int) -> str:
    src = data_uri(_shrink(image, max_side))
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _table(rows, header=None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for v in row:
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            txt = f"{v:.4g}" if isinstance(v, float) else str(v)
            cells.append(f"<td{cls}>{html.escape(txt)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _predictions(preds) -> str:
    if not preds:
        return ""
    rows = []
    for label, p in preds:
        if not np.isfinite(float(p)):
            rows.append(f'<tr><td>{html.escape(str(label))}</td><td class="num">{float(p)}</td>'
                        '<td class="bad">not finite: not a valid prediction</td></tr>')
            continue
        width = max(1, int(round(100 * min(max(float(p), 0.0), 1.0))))
        rows.append(f'<tr><td>{html.escape(str(label))}</td><td class="num">{float(p):.4f}</td>'
                    f'<td><span class="bar" style="width:{width}px"></span></td></tr>')
    head = (f"<div><h3>Top-{len(preds)} prediction</h3><table>"
            "<tr><th>class</th><th>probability</th><th></th></tr>")
    return head + "".join(rows) + "</table></div>"


#: Options that do not change a result and are left out of the page.
_HIDDEN = frozenset({"progress"})


def _fmt_params(params: dict) -> str:
    params = {k: v for k, v in (params or {}).items() if k not in _HIDDEN}
    if not params:
        return "defaults"
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in params.items())


def superpixels_of(e):
    """LIME's superpixel labels of an explanation (``e.segments`` or ``e.extras["segments"]``)."""
    seg = getattr(e, "segments", None)
    if seg is None:
        seg = (e.extras or {}).get("segments")
    return seg if e.method == "lime" else None


def method_picture(image: np.ndarray, e, alpha: float = 0.4, cmap: str = "jet",
                   clip_percent: float = 0.0) -> np.ndarray:
    """The picture shown for one explanation: LIME's superpixels when available, else an overlay."""
    seg = superpixels_of(e)
    if seg is not None and e.raw is not None:
        try:
            return lime_image(image, seg, np.asarray(e.raw, np.float64).ravel())
        except OnnxvizError:
            pass
    return overlay(image, e.heatmap, alpha=alpha, cmap=cmap, clip_percent=clip_percent)


def _summary(method: str) -> str:
    from ..explainers.registry import get

    try:
        return get(method).summary
    except Exception:  # a method from another registry version: no description
        return ""


def _card(img: np.ndarray, e, alpha: float, cmap: str, max_side: int, clip: float) -> str:
    from ..explainers.base import not_drawn

    if e.extras.get("nonfinite"):
        return _failed_card(e.method, "the model's output is not finite ("
                            f"{e.extras['nonfinite']}): no valid map to show")
    if not_drawn(e):
        return _failed_card(e.method, f"{not_drawn(e)}: no finding to show")
    total = e.timings.get("total") if e.timings else None
    pic = method_picture(img, e, alpha, cmap, clip)
    heat = apply_colormap(e.heatmap, cmap, clip_percent=clip)
    mask = apply_mask(img, e.heatmap, top_percent=20)
    t = f"{total:.3f} s" if total is not None else "n/a"
    return (
        f'<div class="card" data-method="{html.escape(e.method)}">'
        f"<h3>{html.escape(e.method)}</h3>"
        f'<div class="what">{html.escape(_summary(e.method))}</div>'
        f"{_img(pic, e.method + ' overlay', max_side)}"
        f'<div class="row" style="margin-top:4px">'
        f'{_img(heat, e.method + " heatmap", max_side // 2)}'
        f'{_img(mask, e.method + " top 20% mask", max_side // 2)}</div>'
        f'<div class="meta">target {e.target} <b>{html.escape(str(e.label))}</b>, '
        f"{getattr(e, 'score_kind', 'score')} {float(e.score):.4g}, {t}<br>"
        f"<code>{html.escape(_fmt_params(e.params))}</code></div></div>"
    )


def _failed_card(method: str, message: str) -> str:
    m = html.escape(method)
    return (f'<div class="card failed" data-method="{m}"><h3>{m}</h3>'
            f'<div class="what">{html.escape(_summary(method))}</div>'
            f'<div class="meta">not available: {html.escape(message)}</div></div>')


def _timings(sections) -> str:
    rows = []
    for s in sections:
        for e in s.explanations:
            stages = ", ".join(f"{k} {v:.3f}" for k, v in e.timings.items() if k != "total")
            rows.append((s.name, e.method, float(e.timings.get("total", float("nan"))), stages))
    if not rows:
        return ""
    return "<h2>Timings (seconds)</h2>" + _table(rows, ("image", "method", "total", "stages"))


def _colorbar_html(cmap: str, clip: float) -> str:
    bar = colorbar(cmap, length=160, thickness=12, vertical=False)
    sat = f", its top {clip:g}% saturated" if clip else ""
    return (f'<div class="cbar">low {_img(bar, "colour bar " + cmap, 400)} high '
            f"(colormap {html.escape(cmap)}; each map scaled to its own range{sat})</div>")


def render_report(sections, model_summary: dict | None = None, title: str = "onnxviz report",
                  settings: dict | None = None, alpha: float = 0.4, cmap: str = "jet",
                  max_side: int = 400, clip_percent: float = 0.0,
                  metrics: dict | None = None) -> str:
    """The report as an HTML string.

    Args:
        sections: :class:`ReportImage` objects, one per input image.
        model_summary: ``{field: value}`` shown as a table (file, input, layout, classes, ...).
        title: page title.
        settings: ``{method: {option: value}}`` the methods ran with (so runs can be repeated).
        alpha, cmap: overlay settings.
        max_side: longest side, in pixels, of the embedded overlays (keeps the page small).
        clip_percent: saturate the top share of each map's values (see :func:`normalize`).
        metrics: ``{"summary": ..., "records": ...}`` from :mod:`onnxviz.metrics`: a metrics
            section (table and deletion/insertion curves, :mod:`onnxviz.viz.metrics_html`).
    """
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">generated {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} '
        "by onnxviz</p>",
        _colorbar_html(cmap, clip_percent),
    ]
    for s in sections:
        img = check_image(s.image)
        size = f"{img.shape[1]}x{img.shape[0]}"
        parts.append(f"<h2>{html.escape(s.name)} <small>({size})</small></h2>")
        parts.append('<div class="row"><div class="card"><h3>original</h3>'
                     f"{_img(img, 'original ' + s.name, max_side)}</div>"
                     f"{_predictions(s.predictions)}</div>")
        cards = [_card(img, e, alpha, cmap, max_side, clip_percent) for e in s.explanations]
        cards += [_failed_card(m, msg) for m, msg in s.failures.items()]
        parts.append('<div class="grid">' + "".join(cards) + "</div>")
    if metrics:
        from .metrics_html import metrics_section

        parts.append(metrics_section(metrics["summary"], metrics["records"]))
    parts.append(_timings(sections))
    if settings:
        parts.append("<h2>Settings</h2>" + _table(
            [(m, _fmt_params(p)) for m, p in settings.items()], ("method", "options")))
    if model_summary:
        parts.append("<h2>Model</h2>" + _table([(k, v) for k, v in model_summary.items()]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path, sections, **kwargs) -> Path:
    """Render the report (see :func:`render_report`) and write it to ``path``; returns the path."""
    path = Path(path)
    text = render_report(sections, **kwargs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise OnnxvizError(f"cannot write the report to {path}: {e.strerror or e}") from None
    return path
