"""Localisation: does the map point at the object? Both need a region (a box or a mask) per image;
images without one score NaN and are left out of the means.

* Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016,
  sec. 5.1, https://arxiv.org/abs/1608.00507): a hit when the map's maximum lies in the region,
  or within ``tolerance`` pixels of it (the paper uses 15 px at 224 x 224). With several
  maxima, any one inside counts.
* Energy-based pointing game (Wang et al., "Score-CAM", CVPR-W 2020, sec. 5.2,
  https://arxiv.org/abs/1910.01279): the share of the map's positive mass inside the region.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ._common import heat_of, region
from .registry import Score, metric


def _region(mask, heat, tolerance: int = 0):
    m = region(mask, heat.shape)
    if m is None or not m.any():
        return None
    if tolerance:
        import cv2

        side = 2 * int(tolerance) + 1
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        m = cv2.dilate(m.astype(np.uint8), disk).astype(bool)
    return m


@metric("pointing_game", "1 when the map's maximum lies in the region (box or mask), else 0",
        higher_is_better=True, needs_mask=True,
        paper="Zhang et al. 2016, https://arxiv.org/abs/1608.00507")
def pointing_game(model, explanation, mask=None, *, tolerance: int = 0) -> Score:
    """Pointing game hit of one explanation.

    Args:
        model: unused (the metric reads the map only).
        explanation: an :class:`onnxviz.Explanation`.
        mask: the region: a 2-D array (nonzero inside, any resolution) or a box dict
            ``{"y0", "x0", "y1", "x1"}`` in heatmap pixels; None gives NaN.
        tolerance: pixels of slack around the region (the paper's 15).

    Returns:
        :class:`Score` 1.0 (hit), 0.0 (miss) or NaN (no region, or a constant map, which points
        nowhere: every pixel would be its maximum); details: the maximum's position.
    """
    if not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise OptionError(f"tolerance must be an integer >= 0, got {tolerance!r}")
    heat = heat_of(explanation)
    m = _region(mask, heat, tolerance)
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    if m is None:
        return Score("pointing_game", float("nan"), {"peak": list(peak)})
    if not heat.max() > heat.min():  # a constant map points nowhere: no hit, no miss
        return Score("pointing_game", float("nan"), {"peak": None, "constant": True})
    hit = bool(np.any(m & (heat == heat.max())))
    return Score("pointing_game", float(hit), {"peak": list(peak), "tolerance": int(tolerance)})


def inside_share(heat: np.ndarray, m: np.ndarray) -> float:
    """Share of the positive mass of ``heat`` inside the boolean mask ``m`` (NaN if none)."""
    pos = np.clip(heat, 0.0, None)
    total = pos.sum()
    return float(pos[m].sum() / total) if total > 0 else float("nan")


@metric("energy_pointing_game", "share of the map's positive mass inside the region",
        higher_is_better=True, needs_mask=True,
        paper="Wang et al. 2020, https://arxiv.org/abs/1910.01279")
def energy_pointing_game(model, explanation, mask=None) -> Score:
    """Energy-based pointing game: ``sum(max(a, 0) in region) / sum(max(a, 0))``.

    Args:
        model: unused.
        explanation: an :class:`onnxviz.Explanation`.
        mask: the region (see :func:`pointing_game`); None gives NaN.

    Returns:
        :class:`Score` in [0, 1]; NaN without a region or when the map has no positive value.
    """
    heat = heat_of(explanation)
    m = _region(mask, heat)
    if m is None:
        return Score("energy_pointing_game", float("nan"))
    return Score("energy_pointing_game", inside_share(heat, m),
                 {"region_share": float(m.mean())})
