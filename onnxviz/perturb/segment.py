"""Superpixels for LIME: scikit-image segmentations, a regular grid, or the user's own labels."""

from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError

#: Segmentation methods and what they are.
METHODS = {
    "quickshift": "skimage quickshift (lime's default: kernel_size=4, max_dist=200, ratio=0.2)",
    "slic": "skimage SLIC k-means superpixels (n_segments, compactness)",
    "felzenszwalb": "skimage Felzenszwalb graph segmentation (scale, sigma=0.5, min_size=50)",
    "grid": "a regular grid of about n_segments square cells",
}


def segment(pixels: np.ndarray, method: str = "quickshift", *, kernel_size: float = 4,
            max_dist: float = 200, ratio: float = 0.2, n_segments: int = 50,
            compactness: float = 10.0, scale: float = 100.0, seed: int = 0) -> np.ndarray:
    """Superpixel labels of an (H, W, 3) image, relabelled 0..S-1 (int64, (H, W)).

    Args:
        pixels: RGB image, 0..255: ``uint8``, or float (a deeper image), which is given to
            scikit-image as floats in [0, 1], as it converts ``uint8`` itself.
        method: a key of :data:`METHODS`.
        kernel_size, max_dist, ratio: quickshift's parameters.
        n_segments: target count for ``slic`` and ``grid``.
        compactness: SLIC's colour/space trade-off.
        scale: Felzenszwalb's scale (larger: bigger segments).
        seed: quickshift's tie-breaking seed.
    """
    import skimage.segmentation as sks

    img = np.asarray(pixels)
    if img.dtype != np.uint8:
        img = img.astype(np.float64) / 255.0
    if method == "quickshift":
        seg = sks.quickshift(img, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio,
                             **_seed_arg(sks.quickshift, seed))
    elif method == "slic":
        seg = sks.slic(img, n_segments=int(n_segments), compactness=compactness, start_label=0)
    elif method == "felzenszwalb":
        seg = sks.felzenszwalb(img, scale=scale, sigma=0.5, min_size=50)
    elif method == "grid":
        seg = grid_segments(img.shape[:2], n_segments)
    else:
        raise OptionError(f"segmentation must be one of {', '.join(METHODS)}, got {method!r}")
    return relabel(seg)


def _seed_arg(fn, seed: int) -> dict:
    """scikit-image renamed quickshift's ``random_seed`` to ``rng`` (0.21)."""
    import inspect

    return {"rng" if "rng" in inspect.signature(fn).parameters else "random_seed": int(seed)}


def grid_segments(size, n_segments: int) -> np.ndarray:
    """A regular grid of about ``n_segments`` near-square cells covering an image of ``size``."""
    H, W = int(size[0]), int(size[1])
    rows = max(1, min(H, round(math.sqrt(n_segments * H / W))))
    cols = max(1, min(W, round(n_segments / rows)))
    r = (np.arange(H) * rows) // H
    c = (np.arange(W) * cols) // W
    return (r[:, None] * cols + c[None, :]).astype(np.int64)


def relabel(segments, size=None) -> np.ndarray:
    """User or library labels -> consecutive int64 labels 0..S-1 in order of first value.

    Raises:
        OptionError: not a 2-D integer array, or not of ``size`` when given.
    """
    seg = np.asarray(segments)
    if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer):
        raise OptionError(f"segments must be a 2-D integer label array, got {seg.dtype} {seg.shape}")
    if size is not None and seg.shape != tuple(size):
        raise OptionError(f"segments have shape {seg.shape}; the model explains {tuple(size)} images")
    _, inv = np.unique(seg, return_inverse=True)
    return inv.reshape(seg.shape).astype(np.int64)
