"""What an occluded or hidden region shows: the baseline image in pixel space (0..255, RGB)."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError

#: Named fills; any number, or one number per channel, is a constant fill.
NAMED = {
    "gray": "128 in every channel, MATLAB occlusionSensitivity's mask value",
    "black": "0 in every channel",
    "mean": "the mean colour: of the image (occlusion, RISE) or of each superpixel (LIME)",
    "blur": "the image under a Gaussian blur of sigma = min(H, W) / 16 pixels",
}


def parse_fill(fill):
    """Normalise a fill option: a name from :data:`NAMED` or a float32 (3,) colour.

    Accepts a number, a sequence of 3 numbers, or a string of them (``"128"``, ``"0,0,0"``),
    so the CLI can pass the option through as text.
    """
    if isinstance(fill, str):
        name = fill.strip().lower()
        if name in NAMED:
            return name
        try:
            fill = [float(v) for v in name.replace(",", " ").split()]
        except ValueError:
            raise OptionError(
                f"fill must be one of {', '.join(NAMED)}, a number or 3 numbers, got {fill!r}"
            ) from None
    values = np.atleast_1d(np.asarray(fill, dtype=np.float64)).ravel()
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.all(np.isfinite(values)):
        raise OptionError(f"fill needs 1 or 3 finite pixel values (0..255), got {fill!r}")
    return values.astype(np.float32)


def baseline(pixels: np.ndarray, fill, segments: np.ndarray | None = None) -> np.ndarray:
    """The (H, W, 3) float32 pixel image that replaces hidden regions.

    Args:
        pixels: (H, W, 3) image, 0..255.
        fill: an option accepted by :func:`parse_fill`.
        segments: int (H, W) superpixel labels 0..S-1; with ``"mean"``, each superpixel is filled
            with its own mean colour (lime's ``hide_color=None``) instead of the image's.
    """
    fill = parse_fill(fill)
    img = np.asarray(pixels, dtype=np.float64)
    H, W = img.shape[:2]
    if isinstance(fill, np.ndarray):
        return np.broadcast_to(fill, (H, W, 3)).astype(np.float32)
    if fill == "gray":
        return np.full((H, W, 3), 128.0, np.float32)
    if fill == "black":
        return np.zeros((H, W, 3), np.float32)
    if fill == "blur":
        import cv2

        return cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigmaX=min(H, W) / 16.0)
    if segments is None:
        return np.broadcast_to(img.reshape(-1, 3).mean(axis=0), (H, W, 3)).astype(np.float32)
    seg = segments.ravel()
    n = int(seg.max()) + 1
    counts = np.bincount(seg, minlength=n).astype(np.float64)
    means = np.stack(
        [np.bincount(seg, weights=img[..., c].ravel(), minlength=n) for c in range(3)], axis=1
    ) / np.maximum(counts, 1)[:, None]
    return means[segments].astype(np.float32)
