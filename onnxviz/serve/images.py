"""Images out of request bodies: base64 image files or nested arrays of pixels.

An image file's size is read from its header (PNG, JPEG, BMP, WebP) and checked against the
pixel limit *before* anything is decoded, so a small file that would decode into gigabytes (a
decompression bomb) costs nothing. Decoding is :func:`onnxviz.imageio.decode_image`: the pixels are
the ones :func:`onnxviz.read_image` gives for the same file, at full precision (``exact``): a
16-bit PNG or float pixels are explained without rounding to 8 bits.

Accepted forms of one instance (and of one element of a v2 ``BYTES`` tensor sent as binary data:
the file's bytes, or base64 text):

- ``"<base64>"`` or ``"data:image/png;base64,<base64>"``;
- ``{"b64": "<base64>"}`` (TensorFlow Serving's convention), ``{"image_bytes": {"b64": ...}}``
  (KServe's image examples), ``{"image": <any of these>}``;
- nested arrays ``[[[r, g, b], ...], ...]`` (H, W, 3), (H, W, 4) or (H, W): integers 0..255 or
  floats in [0, 1] or [0, 255], as :func:`onnxviz.imageio.to_rgb` takes them.
"""

from __future__ import annotations

import base64
import binascii
import struct

import numpy as np

from ..errors import ImageError
from ..imageio import decode_image, to_rgb
from .errors import TooLarge


def image_of(instance, max_pixels: int, what: str = "instance") -> np.ndarray:
    """One request instance as RGB (H, W, 3) pixels: ``uint8``, or float32 0..255 for a deeper
    image (see the module docstring)."""
    if isinstance(instance, dict):
        for key in ("b64", "image_bytes", "image"):
            if key in instance:
                return image_of(instance[key], max_pixels, what)
        raise ImageError(f"{what}: an object needs a 'b64', 'image_bytes' or 'image' field, "
                         f"got {', '.join(map(repr, instance)) or 'none'}")
    if isinstance(instance, str):
        return decode_file(b64decode(instance, what), max_pixels, what)
    if isinstance(instance, bytes):  # a BYTES element of a binary tensor: the file, or base64
        if not instance.startswith(_MAGIC) and instance.isascii():
            instance = b64decode(instance.decode("ascii"), what)
        return decode_file(instance, max_pixels, what)
    if isinstance(instance, list):
        return pixels_of(instance, max_pixels, what)
    raise ImageError(f"{what}: expected a base64 image file or nested arrays of pixels, "
                     f"got {type(instance).__name__}")


def b64decode(text: str, what: str) -> bytes:
    """Strict base64 (a ``data:`` URI prefix allowed); a bad character or length is an error."""
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ImageError(f"{what}: a data: URI must be base64 (data:image/png;base64,...)")
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageError(f"{what}: not valid base64 ({e})") from None
    if not data:
        raise ImageError(f"{what}: empty image")
    return data


def decode_file(data: bytes, max_pixels: int, what: str) -> np.ndarray:
    """An encoded image file -> RGB pixels, its size checked from the header first."""
    w, h = header_size(data, what)
    check_pixels(w, h, max_pixels, what)
    img = decode_image(data, what, exact=True)
    check_pixels(img.shape[1], img.shape[0], max_pixels, what)  # a header that lied
    return img


def pixels_of(rows: list, max_pixels: int, what: str) -> np.ndarray:
    """Nested arrays -> RGB pixels; ragged or non-numeric arrays are an error."""
    try:
        arr = np.asarray(rows)
    except (ValueError, TypeError) as e:
        raise ImageError(f"{what}: nested arrays are not a rectangular image ({e})") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ImageError(f"{what}: pixel arrays must hold numbers, got {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ImageError(f"{what}: expected (H, W), (H, W, 3) or (H, W, 4) pixels, "
                         f"got shape {arr.shape}")
    check_pixels(arr.shape[1], arr.shape[0], max_pixels, what)
    return to_rgb(arr, what=what, exact=True)


def check_pixels(w: int, h: int, max_pixels: int, what: str) -> None:
    if w < 1 or h < 1:
        raise ImageError(f"{what}: empty image ({w}x{h})")
    if w * h > max_pixels:
        raise TooLarge(f"{what}: {w}x{h} = {w * h} pixels is past this server's limit of "
                       f"{max_pixels} (onnxviz serve --max-pixels)")


def header_size(data: bytes, what: str = "image") -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding it.

    Raises:
        ImageError: a format other than PNG, JPEG, BMP or WebP, or a header cut short.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            if data[12:16] != b"IHDR":
                raise ImageError(f"{what}: a PNG without its IHDR header")
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data, what)
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data, what)
    except struct.error:
        raise ImageError(f"{what}: the image header is cut short") from None
    raise ImageError(f"{what}: not a PNG, JPEG, BMP or WebP file (the formats this server reads)")


#: The first bytes of the files :func:`header_size` reads (WebP's are RIFF's).
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"BM", b"RIFF")

# Start-of-frame markers carry the size; C4 (Huffman tables), C8 and CC (arithmetic) do not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes, what: str) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageError(f"{what}: a broken JPEG (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        i += 2 + length
    raise ImageError(f"{what}: a JPEG without a frame header (truncated?)")


def _webp_size(data: bytes, what: str) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    raise ImageError(f"{what}: a WebP file with an unknown first chunk {chunk!r}")
