"""The synthetic "shapes" data set of the LIME article, with ground-truth boxes.

Ribeiro, Singh, Guestrin, "Why Should I Trust You?" (KDD 2016, https://arxiv.org/abs/1602.04938)
explain classifiers on images whose label is decided by one visible object. Here: 64x64 RGB images
of uniform random noise; class 0 ("rectangle") has one filled white rectangle at a random place and
size, class 1 ("no_rectangle") has none. The box of each rectangle is returned, so an explanation
can be scored by whether its heatmap falls inside it.

    >>> from models.shapes import make_dataset
    >>> images, labels, boxes = make_dataset(8, seed=0)
    >>> images.shape, images.dtype
    ((8, 64, 64, 3), dtype('uint8'))
"""

from __future__ import annotations

import numpy as np

SIZE = 64
LABELS = ("rectangle", "no_rectangle")
RECTANGLE, NO_RECTANGLE = 0, 1
MIN_SIDE, MAX_SIDE = 10, 28
WHITE = 255
NOISE_MAX = 200  # noise is uniform in [0, NOISE_MAX]: only the rectangle is pure white

# The fixed first layer both trained networks share: a 1x1 conv summing the unit-scaled channels,
# gain * (sum - threshold), then LeakyReLU(LEAK). It passes white about 100x more strongly than
# noise, so the networks' evidence lies inside the rectangle (see models/README.md).
WHITENESS_GAIN = 10.0
WHITENESS_THRESHOLD = 2.68  # between the brightest noise (3 * 200 / 255 = 2.35) and white (3.0)
LEAK = 0.01  # noise still reaches the network, 100x weaker: no image has an all-zero gradient


def make_dataset(
    n: int, seed: int = 0, *, size: int = SIZE, noise_max: int = NOISE_MAX
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws ``n`` images, about half of each class, deterministically from ``seed``.

    Args:
        n: number of images.
        seed: seed of the NumPy generator; the same seed gives the same images.
        size: image side in pixels.
        noise_max: the noise is uniform over the integers 0..noise_max in each channel.

    Returns:
        ``(images, labels, boxes)``: ``images`` uint8 (n, size, size, 3) RGB; ``labels`` int64 (n,)
        with 0 = rectangle, 1 = no rectangle; ``boxes`` int64 (n, 4) as ``(y0, x0, y1, x1)`` with
        exclusive ends (the rectangle is ``images[i, y0:y1, x0:x1]``), all -1 for class 1.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, noise_max + 1, size=(n, size, size, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    boxes = np.full((n, 4), -1, dtype=np.int64)
    for i in np.flatnonzero(labels == RECTANGLE):
        boxes[i] = _random_box(rng, size)
        y0, x0, y1, x1 = boxes[i]
        images[i, y0:y1, x0:x1] = WHITE
    return images, labels, boxes


def _random_box(rng: np.random.Generator, size: int) -> np.ndarray:
    h, w = rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2)
    y0 = rng.integers(0, size - h + 1)
    x0 = rng.integers(0, size - w + 1)
    return np.array([y0, x0, y0 + h, x0 + w], dtype=np.int64)


def box_mask(box: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Boolean (size, size) mask of a ``(y0, x0, y1, x1)`` box (all False for a -1 box)."""
    mask = np.zeros((size, size), dtype=bool)
    y0, x0, y1, x1 = (int(v) for v in box)
    if y0 >= 0:
        mask[y0:y1, x0:x1] = True
    return mask
