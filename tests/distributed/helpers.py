"""Images for the Ray tests and small checks on result tables."""

from __future__ import annotations

import numpy as np

N_IMAGES = 300
SIDE = 48


def shapes_image(rng: np.random.Generator, rectangle: bool) -> np.ndarray:
    """Noise in 0..200 with, for the rectangle class, one white rectangle (the model's task)."""
    img = rng.integers(0, 201, (SIDE, SIDE, 3), dtype=np.uint8)
    if rectangle:
        h, w = rng.integers(8, 22, size=2)
        y, x = rng.integers(0, SIDE - h), rng.integers(0, SIDE - w)
        img[y:y + h, x:x + w] = 255
    return img


def write_images(folder, n: int, seed: int = 0) -> list[str]:
    """``n`` images, PNG and (every fifth) JPEG, named ``img0000.png`` ...; returns the paths."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img{i:04d}.{'jpg' if i % 5 == 4 else 'png'}"
        cv2.imwrite(str(p), shapes_image(rng, i % 2 == 0)[..., ::-1])
        paths.append(str(p))
    return paths


def keys_of(table) -> list[tuple[str, str]]:
    """The (image, method) pairs of a results or errors table."""
    if table is None:
        return []
    return list(zip(table["image"].to_pylist(), table["method"].to_pylist()))
