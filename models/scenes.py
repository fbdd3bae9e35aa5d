"""Synthetic scenes for the bundled detector and segmenter: one to three shapes on noise.

Each image is uniform noise with one to three filled shapes (a square, a disc or a triangle), each
of its own bright colour, at a random place and size, not overlapping much. The ground truth is
the shapes' boxes and classes (for the detector) and a per-pixel class map (for the segmenter), so
an explanation can be scored by whether it falls on its own object.

    >>> from models.scenes import make_scenes
    >>> s = make_scenes(4, seed=0)
    >>> s.images.shape, len(s.boxes[0]) >= 1
    ((4, 96, 96, 3), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 96
LABELS = ("square", "disc", "triangle")
MIN_SIDE, MAX_SIDE = 16, 40
NOISE_MAX = 110  # the shapes are brighter than the noise in at least one channel


@dataclass
class Scenes:
    """``images`` uint8 (n, S, S, 3); per image, ``boxes`` (k, 4) float32 ``x0, y0, x1, y1``
    (exclusive ends, pixels) and ``classes`` (k,) int64; ``masks`` int64 (n, S, S): 0 is the
    background, ``1 + class`` a shape's pixels."""

    images: np.ndarray
    boxes: list
    classes: list
    masks: np.ndarray


def make_scenes(n: int, seed: int = 0, size: int = SIZE, max_objects: int = 3) -> Scenes:
    """Draws ``n`` scenes deterministically from ``seed``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, NOISE_MAX + 1, (n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), np.int64)
    yy, xx = np.mgrid[:size, :size]
    boxes, classes = [], []
    for i in range(n):
        k = int(rng.integers(1, max_objects + 1))
        placed: list[np.ndarray] = []
        cls: list[int] = []
        for _ in range(40 * k):
            if len(placed) == k:
                break
            side = int(rng.integers(MIN_SIDE, min(MAX_SIDE, size // 2) + 1))
            x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
            box = np.array([x0, y0, x0 + side, y0 + side], np.float32)
            if any(_overlap(box, b) > 0.1 for b in placed):
                continue
            c = int(rng.integers(0, len(LABELS)))
            inside = _shape(c, box, xx, yy)
            colour = rng.integers(170, 256, 3)
            colour[rng.integers(0, 3)] = rng.integers(0, 60)  # a hue, not grey
            images[i][inside] = colour.astype(np.uint8)
            masks[i][inside] = 1 + c
            placed.append(box)
            cls.append(c)
        boxes.append(np.asarray(placed, np.float32).reshape(-1, 4))
        classes.append(np.asarray(cls, np.int64))
    return Scenes(images, boxes, classes, masks)


def _shape(c: int, box: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = box
    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    if c == 0:  # square
        return inside
    cx, cy, r = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (x1 - x0) / 2
    if c == 1:  # disc
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    # triangle, apex up: the half-width grows linearly from the top row to the bottom row
    half = (yy - y0 + 1) / (y1 - y0) * r
    return inside & (np.abs(xx - cx) <= half)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    lt = np.maximum(a[:2], b[:2])
    rb = np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    area = float(np.prod(a[2:] - a[:2]))
    return inter / area
