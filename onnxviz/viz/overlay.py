"""Heatmaps laid over the image they explain, at the image's own size.

A heatmap comes at the model's input resolution (224x224, say) but a person wants to see it on the
photo they gave (any size): :func:`overlay` resizes the heatmap bilinearly to the original image,
colours it and blends it, as the Keras Grad-CAM article does ("superimpose the heatmap on the
original image") — not on the squashed copy the model saw.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from .colormaps import apply_colormap


def resize_heatmap(heatmap, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D heatmap to ``size`` = (H, W), bilinear, float32.

    Bilinear keeps the values inside the original range (no overshoot), so a normalised map stays
    in [0, 1] after resizing.
    """
    import cv2

    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2 or h.size == 0:
        raise OptionError(f"a heatmap must be a non-empty 2-D array, got shape {h.shape}")
    rows, cols = int(size[0]), int(size[1])
    if rows < 1 or cols < 1:
        raise OptionError(f"cannot resize a heatmap to {size}")
    if h.shape == (rows, cols):
        return h.copy()
    h = np.nan_to_num(h, nan=0.0, posinf=0.0, neginf=0.0)
    return cv2.resize(h, (cols, rows), interpolation=cv2.INTER_LINEAR)


def check_image(image) -> np.ndarray:
    """``image`` as an RGB ``uint8`` (H, W, 3) array, or an :class:`OptionError`. Float pixels on
    the 0..255 scale (an image read at full precision, ``Explanation.image`` of a 16-bit image)
    are rounded for display; floats that are not finite, outside [0, 255], or all at most 1 (a
    [0, 1] image, which would show black) are refused."""
    img = np.asarray(image)
    if img.dtype.kind == "f" and img.ndim == 3 and img.shape[2] == 3 and img.size:
        from ..imageio import to_display

        lo, hi = float(np.min(img)), float(np.max(img))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255 or hi <= 1:
            raise OptionError(f"float pixels must be finite, on the 0..255 scale, got "
                              f"{lo:g}..{hi:g} (multiply a [0, 1] image by 255)")
        img = to_display(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise OptionError(f"expected an RGB uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    return img


def overlay(image, heatmap, alpha: float = 0.4, cmap: str = "jet", vmin: float | None = None,
            vmax: float | None = None, symmetric: bool | None = None,
            clip_percent: float = 0.0) -> np.ndarray:
    """Blend the coloured ``heatmap`` over ``image`` at the image's size.

    ``out = (1 - alpha) * image + alpha * colormap(normalize(resize(heatmap)))``.

    Args:
        image: the original RGB ``uint8`` (H, W, 3) image (any size).
        heatmap: 2-D map at any resolution (usually the model's input size).
        alpha: weight of the heatmap colour, in [0, 1] (0.4 as in the Keras article).
        cmap: colormap name (see :data:`onnxviz.viz.COLORMAPS`).
        vmin, vmax, symmetric: value range of the colour scale (see :func:`normalize`); by default
            the heatmap's own range, so the map's most important pixel gets the top colour.
        clip_percent: saturate the top share of values (see :func:`normalize`).

    Returns:
        RGB ``uint8`` image with the shape of ``image``.
    """
    img = check_image(image)
    if not 0.0 <= float(alpha) <= 1.0:
        raise OptionError(f"alpha must be in [0, 1], got {alpha}")
    big = resize_heatmap(heatmap, img.shape[:2])
    colour = apply_colormap(big, cmap, vmin=vmin, vmax=vmax, symmetric=symmetric,
                            clip_percent=clip_percent)
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * colour.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
