"""The metrics section of the HTML report: the method x metric table and, per method, the
deletion and insertion curves as inline SVG (no plotting library, no script).

Input is what :func:`onnxviz.metrics.evaluate` and :func:`onnxviz.metrics.summarize` return.
"""

from __future__ import annotations

import html
import math

import numpy as np

#: Curve metrics plotted, with their colours.
CURVES = {"deletion": "#d0453a", "insertion": "#2f6fd0"}


def line_plot(series: list[dict], *, width: int = 300, height: int = 200, title: str = "",
              x_label: str = "share of pixels", y_label: str = "score") -> str:
    """An SVG line plot of ``series``: ``{"x": [...], "y": [...], "color", "label", "width",
    "opacity"}`` each; x from 0 to 1, y from 0 to the largest value (1 for probabilities)."""
    left, right, top, bottom = 40, 10, 22, 34
    pw, ph = width - left - right, height - top - bottom
    ys = [v for s in series for v in s["y"] if v is not None and math.isfinite(v)]
    lo = min(0.0, min(ys, default=0.0))
    hi = max(1.0, max(ys, default=1.0)) if ys and max(ys) <= 1.0 else max(ys, default=1.0)
    hi = hi if hi > lo else lo + 1.0

    def px(x, y):
        return left + pw * float(x), top + ph * (1.0 - (float(y) - lo) / (hi - lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}" '
           'style="background:#fff;border:1px solid #ddd">']
    if title:
        out.append(f'<text x="{left}" y="14" font-size="12" font-weight="bold">'
                   f"{html.escape(title)}</text>")
    for t in (0.0, 0.5, 1.0):  # grid and ticks
        x0, y0 = px(t, lo)
        out.append(f'<line x1="{x0:.1f}" y1="{top}" x2="{x0:.1f}" y2="{top + ph}" '
                   'stroke="#eee"/>')
        out.append(f'<text x="{x0:.1f}" y="{top + ph + 12}" font-size="9" '
                   f'text-anchor="middle">{t:g}</text>')
        yv = lo + t * (hi - lo)
        _, yy = px(0, yv)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" '
                   'stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" font-size="9" '
                   f'text-anchor="end">{yv:.3g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#999"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 4}" font-size="10" '
               f'text-anchor="middle">{html.escape(x_label)}</text>')
    out.append(f'<text x="10" y="{top + ph / 2}" font-size="10" text-anchor="middle" '
               f'transform="rotate(-90 10 {top + ph / 2})">{html.escape(y_label)}</text>')
    legend = 0
    for s in series:
        pts = [px(x, y) for x, y in zip(s["x"], s["y"]) if y is not None and math.isfinite(y)]
        if not pts:
            continue
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{s["color"]}" '
                   f'stroke-width="{s.get("width", 2)}" opacity="{s.get("opacity", 1)}"/>')
        if s.get("label"):
            ly = top + 12 + 12 * legend
            out.append(f'<text x="{left + pw - 4}" y="{ly}" font-size="10" text-anchor="end" '
                       f'fill="{s["color"]}">{html.escape(s["label"])}</text>')
            legend += 1
    out.append("</svg>")
    return "".join(out)


def method_curves(records: list[dict], method: str) -> str:
    """One SVG with the mean deletion and insertion curves of ``method`` (thin: per image)."""
    series = []
    for name, color in CURVES.items():
        curves = [r["details"][name] for r in records
                  if r["method"] == method and name in r.get("details", {})]
        curves = [c for c in curves if c and c.get("x")]
        if not curves:
            continue
        for c in curves:
            series.append({"x": c["x"], "y": c["y"], "color": color, "width": 1,
                           "opacity": 0.25})
        x = curves[0]["x"]
        same = [c["y"] for c in curves if len(c["y"]) == len(x)]
        mean = np.nanmean(np.asarray(same, np.float64), axis=0) if same else []
        auc = np.nanmean([r["metrics"][name] for r in records if r["method"] == method
                          and r["metrics"].get(name) is not None])
        series.append({"x": x, "y": list(mean), "color": color, "width": 2.5,
                       "label": f"{name} AUC {auc:.3f}"})
    if not series:
        return ""
    return line_plot(series, title=method)


def metrics_section(summary: list[dict], records: list[dict], title: str = "Metrics") -> str:
    """The HTML of the section: table (mean [95 % interval]) and one curve plot per method."""
    from ..metrics.evaluate import table_rows

    if not summary:
        return ""
    headers, rows = table_rows(summary)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    n = max((r["n"] for r in summary), default=0)
    plots = [method_curves(records, m) for m in dict.fromkeys(r["method"] for r in summary)]
    plots = [p for p in plots if p]
    return (f'<h2 id="metrics">{html.escape(title)}</h2>'
            f'<p class="sub">mean over up to {n} images [95 % interval]; ↑ higher is better, '
            "↓ lower is better</p>"
            f"<table>{'<tr>' + head + '</tr>'}{body}</table>"
            + ('<div class="grid">' + "".join(f'<div class="card">{p}</div>' for p in plots)
               + "</div>" if plots else ""))
