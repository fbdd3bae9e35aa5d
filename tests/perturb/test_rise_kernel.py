"""RISE masks against the reference implementation's upsampling, blending and accumulation."""

import numpy as np
import pytest
from skimage.transform import resize

from onnxviz.perturb import blend_batch, mask_params, rise_masks, weighted_mask_sum


def reference_mask(grid, shift, cell, size):
    """Petsiuk et al.'s generate_masks for one mask (github.com/eclique/RISE, explanations.py)."""
    s = grid.shape[0]
    up = (s + 1) * cell
    big = resize(grid, up, order=1, mode="reflect", anti_aliasing=False)
    return big[shift[0]:shift[0] + size[0], shift[1]:shift[1] + size[1]]


@pytest.mark.parametrize("size,cells", [((224, 224), 7), ((37, 50), 5), ((20, 20), 3)])
def test_masks_match_reference_upsampling(size, cells):
    grids, shifts, cell = mask_params(12, cells, 0.5, size, seed=0)
    out = np.empty((13, *size), np.float32)
    rise_masks(grids, shifts, cell, 0, out)
    np.testing.assert_array_equal(out[0], 1.0)  # sample 0: unperturbed
    for i in range(12):
        want = reference_mask(grids[i], shifts[i], cell, size)
        np.testing.assert_allclose(out[i + 1], want, rtol=0, atol=1e-6)


def test_mask_params_seeded_keep_probability():
    g1, s1, c1 = mask_params(4000, 7, 0.3, (224, 224), seed=5)
    g2, s2, _ = mask_params(4000, 7, 0.3, (224, 224), seed=5)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(s1, s2)
    assert c1.tolist() == [32, 32] and s1.min() >= 0 and s1.max() <= 31
    assert abs(g1.mean() - 0.3) < 0.01  # 196,000 cells


def test_masks_at_any_start_equal_one_batch():
    grids, shifts, cell = mask_params(20, 4, 0.5, (16, 18), seed=1)
    whole = np.empty((21, 16, 18), np.float32)
    rise_masks(grids, shifts, cell, 0, whole)
    part = np.empty((6, 16, 18), np.float32)
    rise_masks(grids, shifts, cell, 9, part)
    np.testing.assert_array_equal(part, whole[9:15])


@pytest.mark.parametrize("channels_last", [False, True])
def test_blend(channels_last):
    rng = np.random.default_rng(0)
    shape = (8, 9, 3) if channels_last else (3, 8, 9)
    x0, base = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    masks = rng.random((5, 8, 9)).astype(np.float32)
    out = np.empty((5, *shape), np.float32)
    blend_batch(x0, base, masks, out, channels_last)
    m = masks[..., None] if channels_last else masks[:, None]
    np.testing.assert_allclose(out, base + m * (x0 - base), rtol=1e-6, atol=1e-6)


def test_accumulation_independent_of_batching():
    rng = np.random.default_rng(3)
    masks = rng.random((50, 11, 7)).astype(np.float32)
    w = rng.standard_normal(50)
    want = np.einsum("n,nhw->hw", w, masks.astype(np.float64))
    acc = np.zeros((11, 7))
    weighted_mask_sum(acc, masks, w)
    np.testing.assert_allclose(acc, want, rtol=1e-12, atol=1e-12)
    split = np.zeros((11, 7))
    for s in range(0, 50, 13):
        weighted_mask_sum(split, masks[s:s + 13], w[s:s + 13])
    np.testing.assert_array_equal(split, acc)  # same order of additions: bit-identical
