"""From the scores of perturbed samples back to heatmaps and surrogate weights."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import kernel


@njit(nogil=True, cache=True)
def occlusion_heatmap(drops, rects, H, W):
    """Average the score drop of every patch over the pixels it covers.

    Args:
        drops: float (P,) score of the unperturbed image minus the score with patch ``p`` occluded.
        rects: int64 (P, 4) patches ``(y0, x0, y1, x1)``.
        H, W: heatmap size.

    Returns:
        float32 (H, W): at each pixel the mean drop of the patches covering it (0 where none does),
        Captum's ``Occlusion`` aggregation.
    """
    total = np.zeros((H, W), np.float64)
    count = np.zeros((H, W), np.float64)
    for p in range(rects.shape[0]):
        d = drops[p]
        for y in range(rects[p, 0], rects[p, 2]):
            for x in range(rects[p, 1], rects[p, 3]):
                total[y, x] += d
                count[y, x] += 1.0
    out = np.zeros((H, W), np.float32)
    for y in range(H):
        for x in range(W):
            if count[y, x] > 0:
                out[y, x] = total[y, x] / count[y, x]
    return out


@kernel
def weighted_mask_sum(acc, masks, weights):
    """``acc += sum_j weights[j] * masks[j]`` in float64, samples added in order.

    Each pixel sums its samples in the same order whatever the batching, so a RISE saliency does
    not depend on the batch size (Petsiuk et al. 2018, eq. 6: ``sum_i f(I . M_i) M_i``).
    """
    n, H, W = masks.shape
    for y in prange(H):
        for j in range(n):
            w = weights[j]
            for x in range(W):
                acc[y, x] += w * masks[j, y, x]


def lime_kernel(keep: np.ndarray, kernel_width: float = 0.25) -> np.ndarray:
    """Sample weights: exponential kernel on the cosine distance to the unperturbed row.

    ``w = sqrt(exp(-d^2 / width^2))`` with ``d`` the cosine distance between a row of ``keep`` and
    the all-ones row 0 (Ribeiro et al. 2016, sec. 3.3 ``pi_x(z)``; lime's default kernel). A row
    with no superpixel kept has distance 1, as in ``sklearn.metrics.pairwise_distances``.
    """
    z = keep.astype(np.float64)
    ref = z[0]
    norms = np.sqrt((z * z).sum(axis=1)) * np.sqrt(ref @ ref)
    dots = z @ ref
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    d = np.clip(1.0 - cos, 0.0, 2.0)
    return np.sqrt(np.exp(-(d**2) / kernel_width**2))


def weighted_ridge(X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, alpha: float = 1.0):
    """Ridge regression with an intercept and sample weights, solved in closed form.

    Minimises ``sum_i w_i (y_i - b - x_i . c)^2 + alpha |c|^2`` (the intercept ``b`` is not
    penalised): centre ``X`` and ``y`` on their weighted means, solve
    ``(Xc^T W Xc + alpha I) c = Xc^T W yc``, then ``b = mean_w(y) - mean_w(X) . c``. This is
    scikit-learn's ``Ridge(alpha, fit_intercept=True).fit(X, y, sample_weight)``.

    Args:
        X: (N, F) features; y: (N,) or (N, T) targets; sample_weight: (N,) non-negative.
        alpha: L2 penalty.

    Returns:
        ``(coef, intercept, r2)``: coef (F,) or (T, F), intercept scalar or (T,), and the weighted
        coefficient of determination ``1 - sum w (y - yhat)^2 / sum w (y - mean_w y)^2``.
    """
    X = np.asarray(X, np.float64)
    Y = np.asarray(y, np.float64)
    one = Y.ndim == 1
    Y = Y[:, None] if one else Y
    w = np.asarray(sample_weight, np.float64)
    sw = w / w.sum()
    xm, ym = sw @ X, sw @ Y
    Xc, Yc = X - xm, Y - ym
    Xw = Xc * w[:, None]
    A, B = Xw.T @ Xc + alpha * np.eye(X.shape[1]), Xw.T @ Yc
    try:
        coef = np.linalg.solve(A, B).T  # (T, F)
    except np.linalg.LinAlgError:  # alpha = 0 with a superpixel never (or always) off
        coef = np.linalg.lstsq(A, B, rcond=None)[0].T  # the minimum-norm least-squares fit
    intercept = ym - coef @ xm
    resid = Y - (X @ coef.T + intercept)
    ss_res = w @ resid**2
    ss_tot = w @ (Y - ym) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 1.0)
    if one:
        return coef[0], float(intercept[0]), float(r2[0])
    return coef, intercept, r2
