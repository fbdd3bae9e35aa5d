"""read_image: every file format and array flavour to RGB uint8, and clear errors for the rest."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from onnxviz import ImageError, read_image
from onnxviz.imageio import resize, to_rgb8

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (12, 17, 3), dtype=np.uint8)


def _write_cv2(path, rgb_or_gray):
    img = rgb_or_gray
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[..., ::-1]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), img)
    return path


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "tiff"])
def test_lossless_formats_round_trip(tmp_path, ext):
    path = _write_cv2(tmp_path / f"img.{ext}", RGB)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == RGB.shape
    np.testing.assert_array_equal(out, RGB)


def test_jpeg_is_close(tmp_path):
    smooth = np.zeros((32, 32, 3), np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = 200, 50, 120
    out = read_image(_write_cv2(tmp_path / "img.jpg", smooth))
    assert out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - smooth).max() <= 3  # JPEG is lossy; colour order kept


def test_pil_written_files_keep_rgb_order(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "pil.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "pil.png")), RGB)


def test_grayscale_file_is_replicated(tmp_path):
    gray = RGB[..., 0]
    out = read_image(_write_cv2(tmp_path / "g.png", gray))
    assert out.shape == (12, 17, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 100, 0)
    rgba[0, :, 3] = 255  # opaque row: colour kept
    rgba[1, :, 3] = 0  # transparent row: white
    rgba[2, :, 3] = 128
    out = read_image(_write_cv2(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(out[0, 0], (200, 100, 0))
    np.testing.assert_array_equal(out[1, 0], (255, 255, 255))
    a = 128 / 255
    expected = np.rint(np.array([200, 100, 0]) * a + 255 * (1 - a))
    np.testing.assert_array_equal(out[2, 0], expected)


def test_16bit_png_is_scaled(tmp_path):
    img16 = np.array([[[0, 257, 65535], [1000, 30000, 65280]]], np.uint16)
    out = read_image(_write_cv2(tmp_path / "deep.png", img16))
    np.testing.assert_array_equal(out, np.rint(img16 / 257.0).astype(np.uint8))


def test_palette_png_is_expanded(tmp_path):
    pal = Image.fromarray(RGB).quantize(colors=16)
    pal.save(tmp_path / "pal.png")
    expected = np.asarray(pal.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png"), expected)


def test_skimage_samples():
    from skimage import data

    np.testing.assert_array_equal(read_image("skimage:chelsea"), data.chelsea())
    cam = read_image("skimage:camera")
    assert cam.shape == (*data.camera().shape, 3)
    with pytest.raises(ImageError, match="chelsea"):
        read_image("skimage:no_such_picture")


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.array([[0.0, 0.5, 1.0]]), [[0, 128, 255]]),  # floats in [0, 1]
        (np.array([[0.0, 127.6, 255.0]], np.float32), [[0, 128, 255]]),  # floats in [0, 255]
        (np.array([[0, 257, 65535]], np.uint16), [[0, 1, 255]]),
        (np.array([[False, True]]), [[0, 255]]),
        (np.array([[3, 250]], np.int64), [[3, 250]]),
    ],
)
def test_arrays_to_rgb8(array, expected):
    out = read_image(array)
    assert out.dtype == np.uint8 and out.shape == (*array.shape, 3)
    np.testing.assert_array_equal(out[..., 1], np.asarray(expected))


def test_array_shapes():
    np.testing.assert_array_equal(read_image(RGB), RGB)
    np.testing.assert_array_equal(read_image(RGB[..., :1])[..., 2], RGB[..., 0])
    rgba = np.concatenate([RGB, np.full((12, 17, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(read_image(rgba), RGB)
    assert read_image(RGB) is not RGB  # a copy: callers may write into it


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 20, 30)), "channels-first"),
        (np.zeros((5, 5, 2)), "expected"),
        (np.zeros((2, 2, 2, 3)), "expected"),
        (np.zeros((0, 5)), "empty"),
        (np.array([[np.nan, 0.0]]), "NaN"),
        (np.array([[-1.0, 0.5]]), "outside"),
        (np.array([[300.0]]), "outside"),
        (np.array([[-5, 3]]), "outside"),
        (np.array([["a"]]), "dtype"),
    ],
)
def test_bad_arrays(bad, match):
    with pytest.raises(ImageError, match=match):
        read_image(bad)


def test_bad_files(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("this is not an image\n" * 10)
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "text.jpg")
    good = (_write_cv2(tmp_path / "t.png", RGB)).read_bytes()
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 3])
    with pytest.raises(ImageError):
        read_image(tmp_path / "trunc.png")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="path"):
        read_image(12)


def test_to_rgb8_and_resize():
    assert to_rgb8(np.ones((2, 3))).dtype == np.uint8
    big = np.zeros((40, 60, 3), np.uint8)
    big[:20] = 255
    small = resize(big, (20, 30))
    assert small.shape == (20, 30, 3)
    assert small[:10].min() == 255 and small[10:].max() == 0  # area averaging, no bleed
    assert resize(small, (20, 30)) is small
    assert resize(small, (40, 61)).shape == (40, 61, 3)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # white left half of a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    Image.fromarray(img).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "phone.jpg")
    assert out.shape == (40, 20, 3)  # upright: portrait
    assert out[:15].mean() > 200 and out[25:].mean() < 50  # the white half is now on top
