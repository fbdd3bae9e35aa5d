"""Images deeper than 8 bits (16-bit files, uint16 and float arrays) are explained at full
precision, end to end; 8-bit images take the same path as before (uint8 pixels throughout)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

import onnxviz as ov
import onnxviz.viz
from onnxviz.imageio import read_image, resize, to_display

H = W = 64


def _gray16() -> np.ndarray:
    """A 16-bit gray image with detail finer than one 8-bit level: a ramp and a disc whose
    levels differ by about a quarter of an 8-bit step, on a smooth background."""
    yy, xx = np.mgrid[0:H, 0:W]
    v = 20000 + 90 * xx + 60 * yy
    v = v + 70 * (((yy - 30) ** 2 + (xx - 22) ** 2) < 100) + 17 * (xx % 3)
    return v.astype(np.uint16)


@pytest.fixture(scope="module")
def png16(tmp_path_factory):
    path = tmp_path_factory.mktemp("deep") / "gray16.png"
    assert cv2.imwrite(str(path), _gray16())
    return path


@pytest.fixture(scope="module")
def model(shapes_path):
    return ov.load(shapes_path)


def test_read_image_keeps_16_bits_only_when_asked(png16):
    v = _gray16()
    exact = read_image(png16, exact=True)
    assert exact.dtype == np.float32 and exact.shape == (H, W, 3)
    np.testing.assert_allclose(exact[..., 0], v / 257.0, rtol=0, atol=1e-4)
    assert np.array_equal(exact[..., 0], exact[..., 2])
    eight = read_image(png16)  # the display form, as before
    assert eight.dtype == np.uint8
    assert np.array_equal(eight[..., 0], np.clip(np.rint(v / 257.0), 0, 255).astype(np.uint8))
    # float arrays in [0, 1] and [0, 255] and uint16 arrays read the same exact pixels
    np.testing.assert_allclose(read_image(v / 65535.0, exact=True), exact, atol=1e-4)
    np.testing.assert_allclose(read_image(v / 257.0, exact=True), exact, atol=1e-4)
    np.testing.assert_allclose(read_image(v, exact=True), exact, atol=1e-4)


def test_eight_bit_sources_stay_uint8(tmp_path):
    photo = read_image("skimage:chelsea")
    assert read_image("skimage:chelsea", exact=True).dtype == np.uint8
    assert np.array_equal(read_image(photo, exact=True), photo)
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), photo[..., ::-1])
    assert read_image(path, exact=True).dtype == np.uint8
    ints = photo.astype(np.int32)  # integers in 0..255 hold 8-bit levels: nothing to keep
    assert read_image(ints, exact=True).dtype == np.uint8
    rgba = np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])
    assert np.array_equal(read_image(rgba, exact=True), read_image(rgba))


def test_model_input_is_not_quantized(model, png16):
    v = _gray16()
    px = model.to_pixels(png16)
    assert px.dtype == np.float32
    exact = np.repeat((v / 257.0)[..., None], 3, axis=2)
    np.testing.assert_allclose(model.preprocess(png16)[0], model.normalize(exact)[0], atol=1e-6)
    eight = model.preprocess(read_image(png16))[0]  # rounded to 8 bits: up to half a level off
    assert np.abs(eight - model.preprocess(png16)[0]).max() > 0.3 / 255
    # one deep image makes the batch exact; the 8-bit image in it is unchanged
    both = model.to_pixels([png16, "skimage:chelsea"])
    assert both.dtype == np.float32
    assert np.array_equal(both[1], resize(read_image("skimage:chelsea"), (H, W)).astype(np.float32))


def test_uint8_path_unchanged(model):
    photo = read_image("skimage:astronaut")
    px = model.to_pixels(photo)
    assert px.dtype == np.uint8
    assert np.array_equal(px[0], resize(photo, (H, W)))
    for method in ("saliency", "occlusion"):
        a = ov.explain(model, "skimage:astronaut", method=method, target=1)
        b = ov.explain(model, photo, method=method, target=1)
        assert a.image.dtype == np.uint8
        assert np.array_equal(a.heatmap, b.heatmap)


METHODS = {
    "saliency": {},
    "integrated_gradients": {"steps": 8},
    "gradcam": {},
    "occlusion": {"patch": 16, "stride": 8},
    "rise": {"num_masks": 64, "batch_size": 32},
    "lime": {"num_samples": 64, "segmentation": "quickshift"},
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_16_bit_file_equals_the_same_image_as_float(model, png16, method):
    v = _gray16()
    opts = METHODS[method]
    from_file = ov.explain(model, png16, method=method, target=1, **opts)
    from_float = ov.explain(model, v / 65535.0, method=method, target=1, **opts)
    rounded = ov.explain(model, read_image(png16), method=method, target=1, **opts)
    assert from_file.image.dtype == np.float32
    scale = np.abs(from_float.heatmap).max()
    assert scale > 0
    np.testing.assert_allclose(from_file.heatmap, from_float.heatmap, rtol=0, atol=1e-4 * scale)
    if method in ("saliency", "integrated_gradients", "occlusion"):
        # the exact pixels matter: the 8-bit rounding of the same file gives another map
        assert np.abs(rounded.heatmap - from_file.heatmap).max() > 1e-3 * scale


def test_deep_image_batch_equals_one_by_one(model, png16):
    v = _gray16()
    one = ov.explain(model, png16, method="saliency", target=1)
    many = ov.explain(model, [png16, v / 65535.0, "skimage:chelsea"], method="saliency",
                      target=1, batch_size=2)
    np.testing.assert_allclose(many[0].heatmap, one.heatmap, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(many[1].heatmap, one.heatmap, rtol=1e-5, atol=1e-7)


def test_overlay_and_report_take_deep_pixels(model, png16):
    e = ov.explain(model, png16, method="gradcam", target=1)
    out = ov.viz.overlay(e.image, e.heatmap)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    assert np.array_equal(out, ov.viz.overlay(to_display(e.image), e.heatmap))


def test_cli_explains_a_16_bit_file_exactly(model, png16, shapes_path, tmp_path):
    from onnxviz.cli import main

    out = tmp_path / "out"
    rc = main(["explain", str(shapes_path), str(png16), "-m", "saliency", "--target", "1",
               "--out", str(out), "--npy"])
    assert rc in (0, None)
    arrays = list(out.rglob("*.npy"))
    assert arrays, list(out.rglob("*"))
    heat = np.load(arrays[0])
    lib = ov.explain(model, png16, method="saliency", target=1).heatmap
    np.testing.assert_allclose(heat, lib, rtol=1e-6, atol=1e-9)


def test_server_decodes_16_bit_png_exactly(png16):
    from onnxviz.serve.images import image_of

    b64 = base64.b64encode(png16.read_bytes()).decode()
    img = image_of(b64, 10**6)
    assert img.dtype == np.float32
    np.testing.assert_allclose(img, read_image(png16, exact=True), atol=0)
