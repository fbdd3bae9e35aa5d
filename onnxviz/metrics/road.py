"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci, ICML 2022,
https://arxiv.org/abs/2202.00449).

A share of the pixels is removed in attribution order (MoRF: most relevant first; LeRF: least
relevant first) and filled by *noisy linear imputation* (sec. 4): each removed pixel becomes the
weighted mean of its eight neighbours (1/6 direct, 1/12 diagonal; removed neighbours are unknowns
of the same sparse system), plus Gaussian noise. The fill carries no trace of the removal mask,
which is what makes the scores comparable across methods. The score of the explained class is
recorded at each removal share; the metric is its mean over the shares. A faithful map gives a
low MoRF value and a high LeRF value.

The imputation works in the model's input tensor, as the paper's code does: the noise level is
absolute in that space (0.01 by default, as in the paper's code), and since the preprocessing is
a per-pixel affine map and the weights sum to one, imputing pixels or tensors gives the same fill.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..explainers._checks import check_positive_ints
from ._common import heat_of, model_sample, order_of, pixels_of, score_samples
from .kernels import OFFSETS, WEIGHTS, imputation_system
from .registry import Score, metric

ROAD = "Rong et al. 2022, https://arxiv.org/abs/2202.00449"
#: Removal shares of the paper's figures (10 % .. 90 %).
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def impute(x: np.ndarray, removed: np.ndarray, channels_last: bool, noise: np.ndarray | float = 0.0
           ) -> np.ndarray:
    """Noisy linear imputation of one sample.

    Args:
        x: (C, H, W) or (H, W, C) float sample.
        removed: bool (H, W), True where pixels are replaced.
        channels_last: ``x`` is (H, W, C).
        noise: added to the imputed values: an (n_removed, C) array (one row per removed pixel in
            row-major order) or a constant.

    Returns:
        A float32 copy of ``x`` with the removed pixels imputed.
    """
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    x = np.asarray(x, np.float32)
    removed = np.ascontiguousarray(removed, dtype=np.bool_)
    if removed.all():
        raise OptionError("linear imputation needs at least one pixel kept")
    out = x.copy()
    if not removed.any():
        return out
    rows, cols, vals, rhs, pixels = imputation_system(x, removed, channels_last, OFFSETS, WEIGHTS)
    n = pixels.size
    a = csc_matrix((vals, (rows, cols)), shape=(n, n))
    sol = spsolve(a, rhs).reshape(n, -1) + noise
    H, W = removed.shape
    ys, xs = pixels // W, pixels % W
    if channels_last:
        out[ys, xs, :] = sol
    else:
        out[:, ys, xs] = sol.T
    return out


def road_curve(model, explanation, *, most_first: bool, fractions, noise: float, seed: int,
               score: str, batch_size: int) -> Score:
    """Scores of one explanation with each share of ``fractions`` removed and imputed."""
    check_positive_ints(batch_size=batch_size)
    fractions = np.asarray(fractions, np.float64).ravel()
    if fractions.size == 0 or np.any(fractions < 0) or np.any(fractions >= 1):
        raise OptionError(f"ROAD fractions must be in [0, 1), got {fractions.tolist()}")
    if not np.isfinite(noise) or noise < 0:
        raise OptionError(f"noise must be a number >= 0, got {noise!r}")
    heat = heat_of(explanation)
    image = model_sample(model, pixels_of(model, explanation))
    order = order_of(heat, most_first)
    channels_last = model.input.layout == "NHWC"
    channels = image.shape[-1] if channels_last else image.shape[0]
    counts = np.round(fractions * heat.size).astype(np.int64)
    rng = np.random.default_rng(seed)
    draws = [rng.standard_normal((int(k), channels)) * noise for k in counts]

    def fill(start, stop, x):
        for j, k in enumerate(counts[start:stop]):
            removed = np.zeros(heat.size, bool)
            removed[order[:k]] = True
            x[j] = impute(image, removed.reshape(heat.shape), channels_last, draws[start + j])

    y = score_samples(model, counts.size, fill, int(explanation.target), score=score,
                      batch_size=batch_size)
    name = "road_morf" if most_first else "road_lerf"
    return Score(name, float(y.mean()), {"x": fractions, "y": y, "noise": noise, "seed": seed,
                                         "score": score})


@metric("road_morf", "mean score with the most relevant pixels removed (ROAD imputation)",
        higher_is_better=False, paper=ROAD)
def road_morf(model, explanation, mask=None, *, fractions: tuple = FRACTIONS,
              noise: float = 0.01, seed: int = 0, score: str = "probability",
              batch_size: int = 16) -> Score:
    """ROAD, most relevant first.

    Args:
        model: the :class:`onnxviz.Model` that was explained.
        explanation: an :class:`onnxviz.Explanation`.
        mask: unused.
        fractions: shares of the pixels removed, each in [0, 1).
        noise: standard deviation of the Gaussian noise added to imputed values, in the model's
            input space.
        seed: seed of the noise.
        score: ``probability`` or ``logit``.
        batch_size: imputed images per ONNX Runtime call.

    Returns:
        :class:`Score`: the mean score over ``fractions``; details ``x`` and ``y``.
    """
    return road_curve(model, explanation, most_first=True, fractions=fractions, noise=noise,
                      seed=seed, score=score, batch_size=batch_size)


@metric("road_lerf", "mean score with the least relevant pixels removed (ROAD imputation)",
        higher_is_better=True, paper=ROAD)
def road_lerf(model, explanation, mask=None, *, fractions: tuple = FRACTIONS,
              noise: float = 0.01, seed: int = 0, score: str = "probability",
              batch_size: int = 16) -> Score:
    """ROAD, least relevant first (arguments as :func:`road_morf`)."""
    return road_curve(model, explanation, most_first=False, fractions=fractions, noise=noise,
                      seed=seed, score=score, batch_size=batch_size)
