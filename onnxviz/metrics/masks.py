"""Region masks from a folder: one mask file per image, or boxes in ``boxes.json``.

For an image ``cat.jpg`` (stem ``cat``), the folder may hold ``cat.png`` (or ``.npy``, ``.bmp``,
``.jpg``, ``.tif``; any resolution, nonzero = inside; also ``cat.mask.png``) or an entry of
``boxes.json``::

    {"cat": {"x0": 40, "y0": 10, "x1": 200, "y1": 180}}

with box corners in the original image's pixels (end exclusive), keyed by stem or file name.
Several boxes per image are a list of such objects. An image with neither has no region (its
localisation metrics are NaN; the gate's region rule skips it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ImageError, OptionError

SUFFIXES = (".png", ".npy", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def read_masks(folder, names: list[str], shapes: list[tuple[int, int]],
               keys: list[str] | None = None) -> list[np.ndarray | None]:
    """One boolean mask (at the image's own size) or None per image.

    Args:
        folder: the masks folder.
        names: a stem per image (``onnxviz.results.stems``).
        shapes: each original image's (H, W): boxes are drawn at that size.
        keys: other names an image may go by in ``boxes.json`` (its file name).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OptionError(f"masks folder not found: {folder}")
    boxes = _boxes(folder / "boxes.json")
    out = []
    for k, (stem, shape) in enumerate(zip(names, shapes)):
        mask = _mask_file(folder, stem)
        entry = boxes.get(stem, boxes.get(keys[k] if keys else stem))
        if entry is not None:
            drawn = draw_boxes(entry, shape, stem)
            mask = drawn if mask is None else (_fit(mask, shape) | drawn)
        out.append(None if mask is None else _fit(mask, shape))
    if all(m is None for m in out):
        raise OptionError(f"no mask in {folder} matches an image (expected <stem>.png or "
                          f"boxes.json; stems: {', '.join(names[:5])})")
    return out


def draw_boxes(entry, shape, stem: str) -> np.ndarray:
    """A boolean mask of ``shape`` with the box or boxes of ``entry`` set."""
    items = entry if isinstance(entry, list) else [entry]
    m = np.zeros(shape, bool)
    for b in items:
        try:
            x0, y0, x1, y1 = (int(round(float(b[k]))) for k in ("x0", "y0", "x1", "y1"))
        except (KeyError, TypeError, ValueError):
            raise OptionError(f"boxes.json: the box of {stem!r} needs numbers x0, y0, x1, y1, "
                              f"got {b!r}") from None
        m[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return m


def _boxes(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OptionError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise OptionError(f"{path} must map image names to boxes")
    return data


def _mask_file(folder: Path, stem: str) -> np.ndarray | None:
    for base in (stem, f"{stem}.mask"):
        for suffix in SUFFIXES:
            p = folder / f"{base}{suffix}"
            if p.is_file():
                return load_mask(p)
    return None


def load_mask(path) -> np.ndarray:
    """A boolean mask from an image (nonzero in any channel) or a ``.npy`` array."""
    path = Path(path)
    if path.suffix == ".npy":
        try:
            m = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise OptionError(f"cannot read mask {path}: {e}") from None
    else:
        import cv2

        m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise ImageError(f"cannot read mask image {path}")
    m = np.asarray(m)
    if m.ndim == 3:
        m = m.any(axis=-1)
    if m.ndim != 2:
        raise OptionError(f"mask {path} must be 2-D, got shape {m.shape}")
    return m != 0


def _fit(mask: np.ndarray, shape) -> np.ndarray:
    if mask.shape == tuple(shape):
        return mask
    import cv2

    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool)


def to_input_size(mask: np.ndarray | None, size) -> np.ndarray | None:
    """A mask at the original image's size -> the model's input size (as the image is resized)."""
    return None if mask is None else _fit(mask, tuple(size))
