"""Several methods side by side on one image: the original, then one overlay per method."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from .grids import tile
from .overlay import check_image, overlay


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def compare(image, heatmaps, alpha: float = 0.4, cmap: str = "jet", height: int = 224,
            cols: int | None = None, show_original: bool = True,
            clip_percent: float = 0.0) -> np.ndarray:
    """One picture comparing methods: ``[original] + [overlay per method]`` with captions.

    Args:
        image: the original RGB ``uint8`` image.
        heatmaps: ``{title: heatmap}`` or a list of :class:`onnxviz.Explanation` (titled by method).
        alpha, cmap, clip_percent: overlay settings (see :func:`overlay`).
        height: every tile is scaled to this height, keeping the image's aspect ratio.
        cols: tiles per row (all in one row when None).
        show_original: put the original image first.

    Returns:
        RGB ``uint8`` image.
    """
    from ..explainers.base import not_drawn

    img = check_image(image)
    if not isinstance(heatmaps, dict):  # a map that is no finding: the photo alone, so titled
        heatmaps = {getattr(e, "method", str(i)) + (f" ({not_drawn(e).split(':')[0]})"
                                                   if not_drawn(e) else ""):
                    None if not_drawn(e) else e.heatmap for i, e in enumerate(heatmaps)}
    if not heatmaps:
        raise OptionError("compare() needs at least one heatmap")
    tiles, titles = [], []
    if show_original:
        tiles.append(_fit(img, height))
        titles.append("original")
    for title, hm in heatmaps.items():
        pic = img if hm is None else overlay(img, hm, alpha=alpha, cmap=cmap,
                                             clip_percent=clip_percent)
        tiles.append(_fit(pic, height))
        titles.append(str(title))
    return tile(tiles, cols=cols or len(tiles), titles=titles)
