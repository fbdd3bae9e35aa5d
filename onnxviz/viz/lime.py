"""LIME's picture: superpixel boundaries and the superpixels that argued for or against a class.

As in lime's tutorial (``mark_boundaries(temp / 2 + 0.5, mask)``), plus a two-colour version: the
superpixels with the largest positive weights tinted green, the largest negative ones red.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from .overlay import check_image


def _weights_array(weights, n_segments: int) -> np.ndarray:
    if isinstance(weights, dict):
        out = np.zeros(n_segments, np.float64)
        for k, v in weights.items():
            if 0 <= int(k) < n_segments:
                out[int(k)] = float(v)
        return out
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size < n_segments:
        raise OptionError(f"{w.size} superpixel weights for {n_segments} superpixels")
    return w[:n_segments]


def resize_segments(segments, size: tuple[int, int]) -> np.ndarray:
    """Segment labels resized to ``size`` = (H, W) by nearest neighbour (labels stay labels)."""
    import cv2

    seg = np.asarray(segments)
    if seg.ndim != 2 or seg.size == 0:
        raise OptionError(f"segments must be a non-empty 2-D label array, got shape {seg.shape}")
    if seg.shape == tuple(size):
        return seg.astype(np.int32, copy=False)
    return cv2.resize(seg.astype(np.int32), (int(size[1]), int(size[0])),
                      interpolation=cv2.INTER_NEAREST)


def chosen_superpixels(weights, num_features: int = 5, positive_only: bool = False,
                       min_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the superpixels to show: (positive ids, negative ids), strongest first.

    The same choice as lime's ``ImageExplanation.get_image_and_mask``: with ``positive_only``, the
    ``num_features`` largest weights above ``min_weight``; otherwise the ``num_features`` largest by
    absolute value, skipping those with ``|weight| < min_weight``.
    """
    w = np.asarray(weights, dtype=np.float64).ravel()
    n = max(0, int(num_features))
    if positive_only:
        order = np.argsort(-w, kind="stable")
        pos = order[(w[order] > 0) & (w[order] > float(min_weight))][:n]
        return pos, order[:0]
    order = np.argsort(-np.abs(w), kind="stable")[:n]
    order = order[np.abs(w[order]) >= float(min_weight)]
    return order[w[order] >= 0], order[w[order] < 0]


def lime_image(image, segments, weights, num_features: int = 5, positive_only: bool = False,
               min_weight: float = 0.0, positive_color=(0, 200, 0), negative_color=(220, 0, 0),
               alpha: float = 0.45, boundary_color=(255, 255, 0)) -> np.ndarray:
    """Superpixel boundaries with positive and negative superpixels in two colours.

    Args:
        image: original RGB ``uint8`` image, any size.
        segments: 2-D integer superpixel labels (0..n-1), at any resolution (nearest-resized).
        weights: one weight per superpixel (array indexed by label, or ``{label: weight}``).
        num_features: how many superpixels to highlight (strongest by absolute weight).
        positive_only: highlight only superpixels that support the class.
        min_weight: ignore weaker superpixels (as lime's ``min_weight``).
        positive_color, negative_color: RGB tints of supporting / opposing superpixels.
        alpha: tint strength in [0, 1].
        boundary_color: RGB colour of the superpixel boundaries
            (``skimage.segmentation.mark_boundaries``).

    Returns:
        RGB ``uint8`` image of the image's shape.
    """
    from skimage.segmentation import mark_boundaries

    img = check_image(image)
    seg = resize_segments(segments, img.shape[:2])
    if seg.min() < 0:
        raise OptionError("segment labels must be >= 0")
    w = _weights_array(weights, int(seg.max()) + 1)
    pos, neg = chosen_superpixels(w, num_features, positive_only, min_weight)
    out = img.astype(np.float32)
    for ids, colour in ((pos, positive_color), (neg, negative_color)):
        if ids.size:
            sel = np.isin(seg, ids)
            out[sel] = (1 - alpha) * out[sel] + alpha * np.asarray(colour, np.float32)
    marked = mark_boundaries(out / 255.0, seg, color=np.asarray(boundary_color) / 255.0)
    return np.clip(np.rint(marked * 255.0), 0, 255).astype(np.uint8)
