"""Show only what the model looked at: the heatmap as a binary mask over the image.

The Keras/OpenCV recipe: normalise the heatmap to [0, 1], keep the pixels above a threshold (or the
top k percent), and apply the mask with ``cv2.bitwise_and`` so everything else turns black.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError
from .colormaps import normalize
from .overlay import check_image, resize_heatmap


def heatmap_mask(heatmap, size: tuple[int, int] | None = None, threshold: float | None = 0.5,
                 top_percent: float | None = None) -> np.ndarray:
    """Binary mask (``uint8``, 0 or 255) of the important pixels.

    Args:
        heatmap: 2-D map; resized bilinearly to ``size`` first when given.
        size: (H, W) of the mask, usually the original image's size.
        threshold: keep pixels whose min-max normalised value is >= this (in [0, 1]).
        top_percent: instead of a threshold, keep the ``top_percent`` % highest pixels; pixels
            tied at the cut are all dropped, so at most that share survives (a binary map whose
            hot area is smaller than ``top_percent`` keeps exactly its hot area).

    Returns:
        ``uint8`` (H, W) array with 255 where kept, 0 elsewhere.
    """
    h = np.asarray(heatmap, dtype=np.float32)
    if size is not None:
        h = resize_heatmap(h, size)
    elif h.ndim != 2 or h.size == 0:
        raise OptionError(f"a heatmap must be a non-empty 2-D array, got shape {h.shape}")
    norm = normalize(h)
    if top_percent is not None:
        if not 0.0 < float(top_percent) <= 100.0:
            raise OptionError(f"top_percent must be in (0, 100], got {top_percent}")
        k = max(1, math.ceil(norm.size * float(top_percent) / 100.0))
        if k >= norm.size:
            keep = np.ones(norm.shape, bool)
        else:  # strictly above the (k+1)-th largest value: at most k pixels
            cut = np.partition(norm.ravel(), norm.size - k - 1)[norm.size - k - 1]
            keep = norm > cut
    else:
        if threshold is None or not 0.0 <= float(threshold) <= 1.0:
            raise OptionError(f"threshold must be in [0, 1], got {threshold}")
        keep = norm >= float(threshold)
    return np.where(keep, 255, 0).astype(np.uint8)


def apply_mask(image, heatmap, threshold: float | None = 0.5,
               top_percent: float | None = None) -> np.ndarray:
    """``image`` with the unimportant pixels blacked out (``cv2.bitwise_and`` with the mask).

    Args:
        image: original RGB ``uint8`` (H, W, 3) image, any size.
        heatmap: 2-D map at any resolution (resized to the image).
        threshold, top_percent: which pixels to keep (see :func:`heatmap_mask`).

    Returns:
        RGB ``uint8`` image of the image's shape.
    """
    import cv2

    img = check_image(image)
    mask = heatmap_mask(heatmap, img.shape[:2], threshold=threshold, top_percent=top_percent)
    return cv2.bitwise_and(img, img, mask=mask)
