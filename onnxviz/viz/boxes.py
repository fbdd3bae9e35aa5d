"""Boxes on pictures: a detector's box drawn over its own heatmap, and one picture per image with
every box's overlay side by side."""

from __future__ import annotations

import numpy as np

from .grids import tile

#: The box's colour: white with a black outline, visible on every colormap.
_LINE, _EDGE = (255, 255, 255), (0, 0, 0)


def draw_box(image, box, text: str | None = None) -> np.ndarray:
    """A copy of RGB ``uint8`` ``image`` with ``box`` (``x0, y0, x1, y1`` in its pixels) drawn,
    a white line on a black one, and ``text`` above it when given."""
    import cv2

    out = np.ascontiguousarray(np.asarray(image, np.uint8)).copy()
    h, w = out.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = (min(max(v, 0), w - 1) for v in (x0, x1))
    y0, y1 = (min(max(v, 0), h - 1) for v in (y0, y1))
    thick = max(1, round(min(h, w) / 200))
    cv2.rectangle(out, (x0, y0), (x1, y1), _EDGE, thick + 2)
    cv2.rectangle(out, (x0, y0), (x1, y1), _LINE, thick)
    if text:
        text = text.encode("ascii", "replace").decode("ascii")
        scale = max(0.35, min(h, w) / 600)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y0 - 3 if y0 - th - base - 3 >= 0 else min(h - 1, y1 + th + 3)
        cv2.rectangle(out, (x0, ty - th - 2), (min(w - 1, x0 + tw + 2), ty + base - 1), _EDGE, -1)
        cv2.putText(out, text, (x0 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, _LINE, 1,
                    cv2.LINE_AA)
    return out


def box_grid(overlays, titles, cols: int | None = None) -> np.ndarray:
    """One picture of an image's boxes: each box's overlay (already drawn with its box), with
    its title above, in a grid."""
    return tile(list(overlays), cols=cols, titles=list(titles))
