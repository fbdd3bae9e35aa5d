"""Tiles of images: activation maps (one tile per channel) and filter visualizations.

Each activation channel is normalised on its own (min-max), as in "Deep Learning with Python"'s
channel grids, so a weak channel's pattern is still visible.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError
from .colormaps import apply_colormap


def caption(image, text: str, height: int = 20, scale: float = 0.45,
            wrap: bool = False) -> np.ndarray:
    """``image`` with a white band above holding ``text`` (ASCII; other characters become '?'):
    shortened with ``~`` until it fits, or with ``wrap`` broken over as many lines as it needs."""
    import cv2

    img = np.asarray(image)
    text = text.encode("ascii", "replace").decode("ascii")
    font = cv2.FONT_HERSHEY_SIMPLEX
    if wrap:
        lines = _wrap(text, lambda t: cv2.getTextSize(t, font, scale, 1)[0][0] <= img.shape[1] - 4)
        band = np.full((height * len(lines), img.shape[1], 3), 255, np.uint8)
        for i, line in enumerate(lines):
            cv2.putText(band, line, (2, height * (i + 1) - 6), font, scale, (0, 0, 0), 1,
                        cv2.LINE_AA)
        return np.concatenate([band, img], axis=0)
    band = np.full((height, img.shape[1], 3), 255, np.uint8)
    # shorten until it fits
    while text and cv2.getTextSize(text, font, scale, 1)[0][0] > img.shape[1] - 4:
        text = text[:-2] + "~" if len(text) > 2 else ""
    cv2.putText(band, text, (2, height - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([band, img], axis=0)


def _wrap(text: str, fits) -> list[str]:
    """``text`` in lines that each ``fits``: broken at spaces, a word too long for a line cut."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if fits(candidate):
            line = candidate
            continue
        if line:
            lines.append(line)
        while word and not fits(word):  # a word wider than the picture
            cut = len(word)
            while cut > 1 and not fits(word[:cut]):
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line or not lines:
        lines.append(line)
    return lines


def tile(images, cols: int | None = None, pad: int = 2, background: int = 255,
         titles=None) -> np.ndarray:
    """Arrange RGB ``uint8`` images in a grid (row-major), all resized to the first one's size.

    Args:
        images: a list of (H, W, 3) ``uint8`` images (or an (N, H, W, 3) array).
        cols: tiles per row (about a square grid when None).
        pad: pixels between tiles and around the grid.
        background: gray level of the padding.
        titles: optional list of captions, one per image.

    Returns:
        RGB ``uint8`` grid image.
    """
    import cv2

    imgs = [np.asarray(i) for i in images]
    if not imgs:
        raise OptionError("nothing to tile")
    for i in imgs:
        if i.dtype != np.uint8 or i.ndim != 3 or i.shape[2] != 3:
            raise OptionError(f"tiles must be RGB uint8 (H, W, 3), got {i.dtype} {i.shape}")
    h, w = imgs[0].shape[:2]
    imgs = [i if i.shape[:2] == (h, w) else cv2.resize(i, (w, h), interpolation=cv2.INTER_AREA)
            for i in imgs]
    if titles is not None:
        imgs = [caption(i, str(t)) for i, t in zip(imgs, titles, strict=True)]
        h = imgs[0].shape[0]
    n = len(imgs)
    cols = max(1, min(n, int(cols) if cols else math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), background, np.uint8)
    for k, img in enumerate(imgs):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = img
    return grid


def activation_grid(activation, channels=None, max_channels: int = 16, cmap: str = "viridis",
                    tile_size: int = 64, cols: int | None = None,
                    titles: bool = False) -> np.ndarray:
    """Tile the channels of one layer's activation, each min-max normalised on its own.

    Args:
        activation: (C, H, W) array (channel-first, one image), or (1, C, H, W).
        channels: channel indices to show; the first ``max_channels`` when None.
        max_channels: how many channels to show by default.
        cmap: colormap for the tiles.
        tile_size: each channel is enlarged (nearest neighbour) so its longer side has this many
            pixels, keeping the coarse cells visible.
        cols: tiles per row.
        titles: caption each tile with its channel index.

    Returns:
        RGB ``uint8`` grid image.
    """
    import cv2

    a = np.asarray(activation, dtype=np.float32)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.size == 0:
        raise OptionError(f"an activation must be (C, H, W), got shape {a.shape}")
    chans = list(range(min(int(max_channels), a.shape[0]))) if channels is None else list(channels)
    for c in chans:
        if not 0 <= int(c) < a.shape[0]:
            raise OptionError(f"channel {c} out of range: the layer has {a.shape[0]} channels")
    if not chans:
        raise OptionError("no channels to show")
    scale = max(1, int(tile_size) // max(a.shape[1], a.shape[2]))
    tiles = []
    for c in chans:
        t = apply_colormap(a[int(c)], cmap)
        if scale > 1:
            t = cv2.resize(t, (t.shape[1] * scale, t.shape[0] * scale),
                           interpolation=cv2.INTER_NEAREST)
        tiles.append(t)
    return tile(tiles, cols=cols, titles=[f"ch {c}" for c in chans] if titles else None)


def filter_grid(images, channels=None, cols: int | None = None) -> np.ndarray:
    """Tile filter visualizations (N, H, W, 3) (``uint8``, or floats in [0, 1] / [0, 255]).

    Args:
        images: the images :func:`onnxviz.visualize_filters` returns, one per channel.
        channels: channel indices, to caption each tile (no captions when None).
        cols: tiles per row.
    """
    arr = [np.asarray(i) for i in images]
    arr = [_to_uint8(i) for i in arr]
    titles = [f"ch {c}" for c in channels] if channels is not None else None
    return tile(arr, cols=cols, titles=titles)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[2] != 3:
        img = img.transpose(1, 2, 0)
    if img.dtype == np.uint8:
        return img
    f = np.nan_to_num(img.astype(np.float32))
    if f.size and f.max() <= 1.0 and f.min() >= 0.0:
        f = f * 255.0
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)
