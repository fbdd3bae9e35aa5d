"""The metrics against Quantus (on the same maps, inputs and model) and pytorch-grad-cam's ROAD.

Conventions that differ, and how the comparison bridges them:

* Quantus ``PixelFlipping`` records the score after each step only (no step 0) and integrates
  with ``dx=1``; onnxviz's deletion curve starts at the untouched image and integrates over
  [0, 1]. Its ``"black"`` baseline is the minimum of the input tensor; here the same number is
  given as the fill (raw pixels, so input = pixels).
* Quantus ``ROAD`` scores 0/1 (still top-1) per removal share and is not compared end to end; its
  imputation (``noisy_linear_imputation``) is, with the noise off.
* pytorch-grad-cam's ROAD removes the pixels at or above the p-th percentile (numpy's
  interpolation), ``N - ceil(p (N - 1) / 100)`` of N pixels, and reports the change of the score;
  onnxviz removes ``round(f N)`` pixels and reports the score: the test gives onnxviz the shares
  that remove grad-cam's counts and subtracts the unperturbed score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import onnxviz as ov
from onnxviz import metrics
from onnxviz.metrics.road import impute
from tests.metrics.metric_models import (H, W, explanation, image, import_quantus,
                                         linear_model, torch_linear)

torch = pytest.importorskip("torch")
quantus = import_quantus()

TARGET = 2


@pytest.fixture(scope="module")
def setup():
    model = ov.load(linear_model("NCHW"), threads=1)
    rng = np.random.default_rng(7)
    imgs = [image(seed) for seed in (1, 2)]
    heats = [rng.random((H, W)) for _ in imgs]  # distinct values: no ties in the order
    x = np.stack([model.preprocess(im)[0] for im in imgs]).astype(np.float32)
    return model, imgs, heats, x


def test_deletion_curve_equals_quantus_pixel_flipping(setup):
    model, imgs, heats, x = setup
    # Quantus steps through the channel-broadcast map (3 x 120 features) but checks the step
    # against the 120 pixels: 6 features (2 pixels) per step divides both, 60 steps
    steps = 60
    metric = quantus.PixelFlipping(features_in_step=3 * H * W // steps, normalise=False,
                                   abs=False, perturb_baseline="black", disable_warnings=True)
    with quantus.calling():
        curves = metric(model=torch_linear(), x_batch=x, y_batch=np.array([TARGET] * 2),
                        a_batch=np.stack(heats)[:, None].astype(np.float32), softmax=True,
                        channel_first=True, device="cpu")
    for k, (im, heat) in enumerate(zip(imgs, heats)):
        ours = metrics.get("deletion")(model, explanation(heat, im, TARGET), steps=steps,
                                       fill=float(x[k].min()))
        np.testing.assert_allclose(ours.details["y"][1:], curves[k], rtol=1e-5, atol=1e-6)
        q_auc = np.trapezoid(curves[k])  # Quantus's area: dx = 1, from step 1
        y0 = ours.details["y"][0]
        assert ours.value == pytest.approx((q_auc + (y0 + curves[k][0]) / 2) / steps, rel=1e-5)


def test_localisation_and_sparseness_equal_quantus(setup):
    model, imgs, heats, x = setup
    masks = np.zeros((2, 1, H, W), np.float32)
    masks[0, 0, 2:7, 3:8] = 1
    masks[1, 0, 6:12, 0:4] = 1
    heats = [h - 0.3 for h in heats]  # some negative attribution
    a = np.stack(heats)[:, None].astype(np.float32)
    y = np.array([TARGET] * 2)
    kw = dict(model=torch_linear(), x_batch=x, y_batch=y, a_batch=a, channel_first=True,
              device="cpu")
    with quantus.calling():
        pg = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)(
            s_batch=masks, **kw)
        al = quantus.AttributionLocalisation(abs=False, normalise=False,
                                             positive_attributions=True,
                                             disable_warnings=True)(s_batch=masks, **kw)
        sp = quantus.Sparseness(abs=True, normalise=False, disable_warnings=True)(**kw)
    for k, (im, heat) in enumerate(zip(imgs, heats)):
        e = explanation(heat, im, TARGET)
        m = masks[k, 0].astype(bool)
        assert metrics.get("pointing_game")(model, e, m).value == float(pg[k])
        assert metrics.get("energy_pointing_game")(model, e, m).value == pytest.approx(
            al[k], rel=1e-6)
        # Quantus adds 1e-7 to every value before the Gini index
        assert metrics.get("sparseness")(model, e).value == pytest.approx(sp[k], abs=1e-6)


def test_spearman_equals_quantus(setup):
    from onnxviz.metrics._common import spearman

    _, _, heats, _ = setup
    q = quantus.functions.similarity_func.correlation_spearman(heats[0].ravel(),
                                                                heats[1].ravel())
    assert spearman(heats[0], heats[1]) == pytest.approx(q, abs=1e-12)


@pytest.mark.parametrize("channels_last", [False, True])
def test_imputation_equals_quantus_and_grad_cam(channels_last):
    from tests.zoo.timm_shim import register_torchvision_ops

    register_torchvision_ops()
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    rng = np.random.default_rng(0)
    x = rng.random((3, 14, 11)).astype(np.float32)
    removed = rng.random((14, 11)) < 0.6
    ours = impute(x.transpose(1, 2, 0) if channels_last else x, removed, channels_last)
    ours = ours.transpose(2, 0, 1) if channels_last else ours
    idx = np.flatnonzero(removed.ravel())
    q = quantus.functions.perturb_func.noisy_linear_imputation(x, idx, noise=0.0)
    g = NoisyLinearImputer(noise=0.0)(torch.from_numpy(x), torch.from_numpy(
        (~removed).astype(np.float32))).numpy()
    np.testing.assert_allclose(ours, q, atol=1e-5)
    np.testing.assert_allclose(ours, g, atol=1e-5)


@pytest.mark.parametrize("lerf", [False, True])
def test_road_equals_pytorch_grad_cam(setup, lerf):
    from tests.zoo.timm_shim import register_torchvision_ops

    register_torchvision_ops()
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric, RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, imgs, heats, x = setup
    percentiles = [10, 30, 50, 70, 90]
    n = H * W
    removal = RemoveLeastRelevantFirst if lerf else RemoveMostRelevantFirst
    theirs = np.stack([
        PerturbationConfidenceMetric(removal(p, NoisyLinearImputer(noise=0.0)))(
            torch.from_numpy(x), np.stack(heats).astype(np.float32),
            [ClassifierOutputTarget(TARGET)] * 2, torch_linear())
        for p in percentiles], axis=1)
    fractions = [(n - math.ceil(p * (n - 1) / 100)) / n for p in percentiles]
    for k, (im, heat) in enumerate(zip(imgs, heats)):
        e = explanation(heat, im, TARGET)
        s = metrics.get("road_lerf" if lerf else "road_morf")(
            model, e, fractions=tuple(fractions), noise=0.0, score="logit")
        base = float(model.forward(x[k:k + 1])[0, TARGET])
        np.testing.assert_allclose(s.details["y"] - base, theirs[k], rtol=1e-4, atol=1e-4)
