"""PNG encoding of RGB images: bytes, files and ``data:`` URIs for the HTML report."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from ..errors import OnnxvizError


def encode_png(image) -> bytes:
    """PNG bytes of an RGB ``uint8`` (H, W, 3) or gray (H, W) image."""
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8, got {img.dtype}")
    if img.ndim == 3:
        img = np.ascontiguousarray(img[..., ::-1])  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError(f"cannot encode an image of shape {img.shape} as PNG")
    return buf.tobytes()


def write_png(path, image) -> Path:
    """Write ``image`` (RGB ``uint8``) to ``path`` as PNG; returns the path."""
    path = Path(path)
    try:
        path.write_bytes(encode_png(image))
    except OSError as e:
        raise OnnxvizError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def data_uri(image) -> str:
    """``data:image/png;base64,...`` URI of ``image``, to embed it in an HTML page."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")
