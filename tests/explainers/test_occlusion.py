"""Occlusion sensitivity against Captum on the torch original, and its own invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import onnxviz as ov
from linear_onnx import contribution, image, linear_model
from onnxviz.perturb import patch_grid


@pytest.mark.parametrize(
    "score,fill,patch,stride",
    [("probability", "gray", (112, 96), (56, 64)),  # 3 x 3 overlapping rectangular patches
     ("logit", (10, 200, 90), 100, 70)],  # 3 x 3, per-channel fill, last patches cut at 224
)
def test_equals_captum_on_the_torch_original(effnet, chelsea, torch_net, score, fill, patch,
                                             stride):
    import torch

    captum_attr = pytest.importorskip("captum.attr")
    net = torch_net

    def forward(x):
        out = net(x)
        return torch.softmax(out, dim=1) if score == "probability" else out

    e = ov.explain(effnet, chelsea, method="occlusion", patch=patch, stride=stride, fill=fill,
                   score=score, batch_size=16)
    x = torch.from_numpy(effnet.normalize(chelsea[None]))
    colour = np.broadcast_to(np.float32(128 if fill == "gray" else fill), (1, 224, 224, 3))
    base = torch.from_numpy(effnet.normalize(colour))  # our pixel fill, after preprocessing
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    with torch.no_grad():
        assert int(net(x)[0].argmax()) == e.target
        attr = captum_attr.Occlusion(forward).attribute(
            x, sliding_window_shapes=(3, ph, pw), strides=(3, sh, sw), baselines=base,
            target=e.target, perturbations_per_eval=16)
    want = attr[0].mean(0).numpy()  # Captum repeats the value over the 3 channels
    want = np.nan_to_num(want)  # pixels no window covers: 0/0 in Captum, 0 in onnxviz
    assert e.heatmap.shape == (224, 224)
    np.testing.assert_allclose(e.heatmap, want, rtol=0, atol=1e-5)
    assert np.abs(want).max() > 1e-3  # the comparison is not between two zero maps


def test_raw_grid_and_worst_patch(effnet, chelsea):
    e = ov.explain(effnet, chelsea, method="occlusion", patch=112, stride=56, batch_size=4)
    assert e.raw.shape == (3, 3) and e.extras["grid"] == (3, 3) and e.extras["forwards"] == 10
    r, c = np.unravel_index(np.argmax(e.raw), e.raw.shape)
    assert e.extras["worst_patch"] == (56 * r, 56 * c, 56 * r + 112, 56 * c + 112)
    assert e.extras["worst_drop"] == pytest.approx(float(e.raw.max()))
    p = effnet.predict(chelsea, top=1)[0]
    assert e.target == p.index and e.label == p.label
    assert e.score == pytest.approx(p.probability, abs=1e-6)
    assert e.timings["total"] > 0 and e.method == "occlusion"


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("edges", ["truncate", "center"])
def test_linear_model_known_answer(layout, edges):
    """Each patch's drop is the hidden pixels' contribution; overlaps are averaged."""
    m = ov.load(linear_model(layout))
    img = image()
    fill = (30, 60, 90)
    e = ov.explain(m, img, method="occlusion", patch=(4, 3), stride=2, fill=fill, edges=edges,
                   score="logit", target=1, batch_size=5)
    contrib = contribution(img, fill, target=1)
    rects, grid = patch_grid((12, 10), (4, 3), 2, edges)
    drops = np.array([contrib[y0:y1, x0:x1].sum() for y0, x0, y1, x1 in rects])
    np.testing.assert_allclose(e.raw.ravel(), drops, rtol=1e-4, atol=1e-4)
    total, count = np.zeros((12, 10)), np.zeros((12, 10))
    for d, (y0, x0, y1, x1) in zip(drops, rects):
        total[y0:y1, x0:x1] += d
        count[y0:y1, x0:x1] += 1
    np.testing.assert_allclose(e.heatmap, total / count, rtol=1e-4, atol=1e-4)
    assert e.raw.shape == grid and e.target == 1


def test_batch_size_and_list_of_images_change_nothing():
    m = ov.load(linear_model("NHWC"))
    imgs = [image(1), image(2)]
    one = [ov.explain(m, im, method="occlusion", patch=3, stride=1, batch_size=64) for im in imgs]
    both = ov.explain(m, imgs, method="occlusion", patch=3, stride=1, batch_size=7, target=[None, 2])
    np.testing.assert_allclose(both[0].heatmap, one[0].heatmap, rtol=1e-5, atol=1e-7)
    assert both[1].target == 2 and both[0].target == one[0].target
    seen = []
    ov.explain(m, imgs[0], method="occlusion", patch=3, stride=1, batch_size=16,
               progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (81, 81) and len(seen) == 6  # 10 x 8 patches + the image, 16 a batch


def test_every_exporter_matches_occluding_pixels_by_hand(third_party_path):
    """MATLAB (flattened and 1-channel inputs, regression), tf2onnx (NHWC), PyTorch: each patch's
    drop equals the model's score on the pixel image with that patch painted grey."""
    with warnings.catch_warnings():  # no preprocessing metadata: the guess is fine here
        warnings.simplefilter("ignore")
        m = ov.load(third_party_path)
    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    e = ov.explain(m, img, method="occlusion", patch=7, stride=6, score="logit", batch_size=8)
    pixels = m.to_pixels(img)
    size = m.input.flat_size or m.input.size
    rects, grid = patch_grid(size, 7, 6)
    copies = np.repeat(pixels.reshape(1, *size, 3), len(rects) + 1, axis=0)
    for k, (y0, x0, y1, x1) in enumerate(rects):
        copies[k + 1, y0:y1, x0:x1] = 128
    scores = m.forward(m.normalize(copies.reshape(-1, *pixels.shape[1:])))[:, e.target]
    want = scores[0] - scores[1:]
    assert e.heatmap.shape == tuple(size) and e.raw.shape == grid
    np.testing.assert_allclose(e.raw.ravel(), want, rtol=1e-4, atol=1e-5 * max(1, np.abs(scores).max()))
