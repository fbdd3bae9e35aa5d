"""Read any image a user brings into RGB (H, W, 3) pixels, and resize it for a model.

Pixels are on the 0..255 scale. 8-bit sources give ``uint8``. Deeper sources (16-bit files,
``uint16`` arrays, float arrays) give ``uint8`` from :func:`read_image` (for display), and float32
at full precision from ``read_image(..., exact=True)``, which is what a :class:`onnxviz.Model`
reads: a 16-bit medical image or a float tensor from a pipeline is explained without being
quantized to 256 levels. Nothing changes for 8-bit images.

What is accepted (files via OpenCV ``IMREAD_UNCHANGED``, with scikit-image as a fallback):

- PNG, JPEG (turned upright by its EXIF orientation), BMP, TIFF, WebP; 16-bit images are
  scaled by 1/257 (65535 -> 255), then rounded to 8 bits unless ``exact``;
- grayscale (replicated to 3 channels), palette (expanded to RGB by the decoder);
- RGBA / 4 channels: **composited on white** using the alpha channel (a transparent background
  then looks like paper, not black);
- ``skimage:NAME`` for the photos bundled with scikit-image (``skimage:chelsea``, ``skimage:coffee``,
  ``skimage:astronaut``, ``skimage:rocket``, ...), so examples need no file;
- arrays: ``uint8``; ``uint16`` (scaled by 1/257); floats in [0, 1] (scaled by 255) or [0, 255];
  booleans; 2-D gray, (H, W, 1), (H, W, 3) RGB and (H, W, 4) RGBA.

Anything else (missing, empty, truncated, not an image, odd shapes, NaN) raises :class:`ImageError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import ImageError, ResourceError, guard

SKIMAGE_PREFIX = "skimage:"


@guard("reading the image")
def read_image(source, *, exact: bool = False) -> np.ndarray:
    """Read ``source`` (a path, ``skimage:NAME`` or an array) as an RGB (H, W, 3) image.

    Args:
        source: file path (str or ``os.PathLike``), ``"skimage:NAME"``, or a numpy array.
        exact: keep the precision of sources deeper than 8 bits (16-bit files, ``uint16`` and
            float arrays): float32 pixels on the 0..255 scale, not rounded. 8-bit sources are
            ``uint8`` either way.

    Returns:
        A new C-contiguous array of shape (H, W, 3), RGB: ``uint8``, or with ``exact`` float32 in
        [0, 255] for a deeper source.

    Raises:
        ImageError: the file is missing/unreadable, or the array cannot be read as an image.
    """
    if isinstance(source, np.ndarray):
        return to_rgb(source, what="array", exact=exact)
    if isinstance(source, str) and source.startswith(SKIMAGE_PREFIX):
        return _skimage_sample(source[len(SKIMAGE_PREFIX):], exact)
    if isinstance(source, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source):
        raise ImageError(f"{source} is a URL; onnxviz reads local files only (download it "
                         "first, e.g. curl -O URL)")
    if isinstance(source, (str, os.PathLike)):
        return to_rgb(_read_file(Path(source)), what=str(source), exact=exact)
    raise ImageError(
        f"cannot read an image from a {type(source).__name__}; "
        "give a file path, 'skimage:NAME' or a numpy array"
    )


def _skimage_sample(name: str, exact: bool = False) -> np.ndarray:
    from skimage import data

    fn = getattr(data, name, None)
    if not name or name.startswith("_") or not callable(fn):
        known = [n for n in ("chelsea", "coffee", "astronaut", "rocket", "camera", "cat")
                 if hasattr(data, n)]
        raise ImageError(f"unknown scikit-image sample {name!r}; try one of: {', '.join(known)}")
    try:
        img = fn()
    except Exception as e:  # e.g. samples that need a download (pooch)
        raise ImageError(f"scikit-image sample {name!r} is not available offline: {e}") from None
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise ImageError(f"scikit-image sample {name!r} is not a 2-D image")
    return to_rgb(img, what=f"skimage:{name}", exact=exact)


def _read_file(path: Path) -> np.ndarray:
    from . import limits

    path = limits.regular_file(path, "image file", ImageError)
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty: {path}")
    check_size(path, str(path))
    img = _opencv_decode(np.fromfile(str(path), dtype=np.uint8))
    if img is not None:
        return img
    try:  # formats OpenCV lacks (some TIFF flavours, ...)
        import warnings

        import skimage.io

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = skimage.io.imread(str(path))
    except Exception:
        img = None
    if img is None or not isinstance(img, np.ndarray) or img.size == 0 or img.dtype == object:
        raise ImageError(f"cannot read {path} as an image (not an image file, truncated, "
                         "or a format neither OpenCV nor scikit-image knows)")
    return img


def check_size(source, what: str) -> None:
    """Refuse an image whose header declares more than ``limits.MAX_PIXELS`` pixels, before
    anything is decoded (a few-KB PNG can declare 30000 x 30000). Files the header reader does
    not know are left to the decoders."""
    import warnings

    from PIL import Image

    from . import limits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(source) as im:
                w, h = im.size
        except Image.DecompressionBombError:
            raise ResourceError(f"{what} declares more than {2 * Image.MAX_IMAGE_PIXELS:,} "
                                f"pixels, more than the limit of {limits.MAX_PIXELS:,} "
                                "(ONNXVIZ_MAX_PIXELS)") from None
        except Exception:  # not a format Pillow knows: OpenCV's own limits apply
            return
    limits.check_pixels(h, w, what)


def decode_image(data: bytes, what: str = "image bytes", *, exact: bool = False) -> np.ndarray:
    """Decode an image file's bytes (PNG, JPEG, BMP, TIFF, WebP) as :func:`read_image` reads
    the file: RGB (H, W, 3), the same pixels (``exact`` as there).

    Raises:
        ImageError: empty, truncated or not an image OpenCV can decode.
    """
    if not data:
        raise ImageError(f"{what}: empty, not an image")
    import io

    check_size(io.BytesIO(data), what)
    img = _opencv_decode(np.frombuffer(data, dtype=np.uint8))
    if img is None:
        raise ImageError(f"cannot decode {what} as an image (not an image file, truncated, "
                         "or a format OpenCV does not know)")
    return to_rgb(img, what=what, exact=exact)


def _opencv_decode(buf: np.ndarray) -> np.ndarray | None:
    """OpenCV's decoding of an encoded image (RGB or RGBA order, depth kept), None if it fails."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # broken files: our error
    # JPEG: IMREAD_COLOR applies the EXIF orientation (phone photos); others keep depth and alpha
    jpeg = buf[:2].tobytes() == b"\xff\xd8"
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV's own pixel limit or a decoder failure: the caller's message
        return None
    if img is None or not img.size:
        return None
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[..., ::-1]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., [2, 1, 0, 3]]
    return img


def to_rgb8(img: np.ndarray, what: str = "image") -> np.ndarray:
    """Convert an image array (gray, RGB, RGBA; uint8/uint16/float/bool) to RGB ``uint8``.

    RGBA is composited on white; float images with max <= 1 are scaled by 255, others taken as
    0..255; ``uint16`` is scaled by 1/257 (65535 -> 255).
    """
    return to_rgb(img, what, exact=False)


def to_rgb(img: np.ndarray, what: str = "image", exact: bool = True) -> np.ndarray:
    """:func:`to_rgb8`, keeping the precision of deeper images when ``exact``: RGB ``uint8`` for
    8-bit sources (``uint8``, ``bool``, integers in 0..255), float32 on the 0..255 scale for
    ``uint16`` and float arrays (not rounded; RGBA composited in float)."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[2] not in (1, 3, 4):
        raise ImageError(f"{what}: shape {img.shape} looks channels-first; give (H, W, C)")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ImageError(f"{what}: expected (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"{what}: empty image of shape {img.shape}")
    if img.dtype == np.uint8 and (img.ndim == 2 or img.shape[2] == 3):  # the common case: no math
        return np.array(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img,
                        order="C", copy=True)
    f = _to_float255(img, what)
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=2)
    elif f.shape[2] == 4:
        alpha = f[..., 3:4] / 255.0
        f = f[..., :3] * alpha + 255.0 * (1.0 - alpha)
    if exact and not _eight_bit(img):
        return np.ascontiguousarray(np.clip(f, 0, 255), dtype=np.float32)
    return np.ascontiguousarray(np.clip(np.rint(f), 0, 255).astype(np.uint8))


def _eight_bit(img: np.ndarray) -> bool:
    """Whether an (already range-checked) array holds 8-bit levels exactly: nothing to keep."""
    return img.dtype == np.bool_ or (np.issubdtype(img.dtype, np.integer) and img.dtype != np.uint16)


def to_display(pixels: np.ndarray) -> np.ndarray:
    """Pixels as RGB ``uint8`` for showing: ``uint8`` as is, float 0..255 rounded."""
    px = np.asarray(pixels)
    if px.dtype == np.uint8:
        return px
    return np.clip(np.rint(np.nan_to_num(px.astype(np.float32))), 0, 255).astype(np.uint8)


def _to_float255(img: np.ndarray, what: str) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32)
    if img.dtype == np.bool_:
        return img.astype(np.float32) * 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 257.0
    if np.issubdtype(img.dtype, np.integer):
        lo, hi = int(img.min()), int(img.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"{what}: integer values {lo}..{hi} are outside 0..255")
        return img.astype(np.float32)
    if np.issubdtype(img.dtype, np.floating):
        f = img.astype(np.float32)
        if not np.all(np.isfinite(f)):
            raise ImageError(f"{what}: contains NaN or infinite values")
        lo, hi = float(f.min()), float(f.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"{what}: float values {lo:g}..{hi:g} are outside [0, 1] and [0, 255]")
        return f * 255.0 if hi <= 1.0 else f
    raise ImageError(f"{what}: unsupported dtype {img.dtype}")


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image (``uint8``, or float32 kept in float) to ``size`` = (H, W) (area when
    shrinking, bilinear else)."""
    import cv2

    h, w = int(size[0]), int(size[1])
    if img.shape[:2] == (h, w):
        return img
    shrink = h < img.shape[0] and w < img.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(img, (w, h), interpolation=interp)
    if out.ndim == 2:
        out = out[..., None]
    return out
