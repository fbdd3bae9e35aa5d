"""What the metrics share: the explained image as model input, pixel orderings, batched scoring,
rank statistics and region masks."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..explainers.base import Timer
from ..explainers.perturbation.common import check_score, geometry, run_set, to_input


def heat_of(explanation) -> np.ndarray:
    """The explanation's heatmap as float64 (H, W), checked."""
    heat = np.asarray(explanation.heatmap, np.float64)
    if heat.ndim != 2 or heat.size == 0:
        raise OptionError(f"a heatmap must be 2-D (H, W), got shape {heat.shape}")
    if not np.all(np.isfinite(heat)):
        raise OptionError(f"the {explanation.method} heatmap has NaN or infinite values")
    return heat


def pixels_of(model, explanation) -> np.ndarray:
    """The (H, W, 3) pixels the heatmap is aligned with (``Explanation.image``)."""
    if explanation.image is None:
        raise OptionError("the explanation has no image (Explanation.image); metrics need the "
                          "pixels it explains")
    geo = geometry(model)
    px = np.asarray(explanation.image)
    if px.shape[:2] != tuple(geo.size):
        raise OptionError(f"the explanation's image is {px.shape[:2]}, the model explains "
                          f"{tuple(geo.size)}")
    return px


def order_of(heat: np.ndarray, most_first: bool = True) -> np.ndarray:
    """Flat pixel indices by attribution, most relevant first (ties: lower index first)."""
    flat = heat.ravel()
    return np.argsort(-flat if most_first else flat, kind="stable").astype(np.int64)


def score_samples(model, total: int, fill, target: int, *, score: str, batch_size: int,
                  timer: Timer | None = None) -> np.ndarray:
    """The explained score of ``target`` on ``total`` generated samples, streamed in batches.

    ``fill(start, stop, x)`` writes samples ``start .. stop - 1`` into the batch ``x``
    (n, *sample_shape); at most two batches exist at a time.
    """
    check_score(score)
    geo = geometry(model)
    values = np.empty(total, np.float64)

    def consume(start, stop, slot, scores):
        values[start:stop] = scores[:, target]

    run_set(model, total, batch_size, geo, lambda a, b, slot: fill(a, b, slot.x[:b - a]),
            consume, score=score, timer=timer or Timer())
    return values


def model_sample(model, pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) pixels (uint8 or float 0..255) -> one sample in kernel layout."""
    return to_input(model, pixels, geometry(model))


def ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``a`` (flattened), ties sharing their mean rank."""
    flat = np.asarray(a, np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    sorted_ = flat[order]
    starts = np.r_[True, sorted_[1:] != sorted_[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], flat.size] - 1
    mean_rank = (first + last) / 2.0 + 1.0
    out = np.empty(flat.size, np.float64)
    out[order] = mean_rank[group]
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (Pearson's r of their ranks; NaN if one is flat)."""
    ra, rb = ranks(a), ranks(b)
    if ra.size != rb.size:
        raise OptionError(f"maps of different sizes: {np.shape(a)} and {np.shape(b)}")
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def top_mask(heat: np.ndarray, percent: float) -> np.ndarray:
    """Boolean mask of the ``percent`` % highest pixels (at least one; ties by index)."""
    k = max(1, int(round(heat.size * percent / 100.0)))
    out = np.zeros(heat.size, bool)
    out[order_of(heat)[:k]] = True
    return out.reshape(heat.shape)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def region(mask, shape) -> np.ndarray | None:
    """A region mask at the heatmap's ``shape``: bool array (resized nearest), or None.

    ``mask`` may be a boolean/numeric (h, w) array (nonzero inside) at any resolution, or a box
    ``{"y0", "x0", "y1", "x1"}`` in the heatmap's pixels (exclusive ends).
    """
    if mask is None:
        return None
    if isinstance(mask, dict):
        try:
            y0, x0, y1, x1 = (int(round(float(mask[k]))) for k in ("y0", "x0", "y1", "x1"))
        except (KeyError, TypeError, ValueError):
            raise OptionError(f"a box needs numbers y0, x0, y1, x1, got {mask!r}") from None
        out = np.zeros(shape, bool)
        out[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
        return out
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m.any(axis=-1)
    if m.ndim != 2:
        raise OptionError(f"a region mask must be 2-D, got shape {m.shape}")
    m = m != 0
    if m.shape != tuple(shape):
        import cv2

        m = cv2.resize(m.astype(np.uint8), (shape[1], shape[0]),
                       interpolation=cv2.INTER_NEAREST).astype(bool)
    return m
