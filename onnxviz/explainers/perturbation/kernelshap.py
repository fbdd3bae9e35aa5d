"""KernelSHAP on superpixels: Shapley values of the superpixels, sampled or exact.

Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017
(https://arxiv.org/abs/1705.07874), Theorem 2: with the Shapley kernel
``pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))`` as sample weights, the weighted linear regression
of the score on coalitions ``z`` (superpixels kept: 1, hidden: 0) gives the Shapley values. The
superpixels, the fill of hidden ones and the sample images are LIME's (:mod:`.lime`,
:func:`onnxviz.perturb.lime_batch`); only the coalitions and the fit differ.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ...errors import OptionError
from ...perturb import lime_batch, relabel, segment
from ...perturb.segment import METHODS as SEGMENTATIONS
from .._checks import check_positive_ints
from ..base import Explainer, Explanation, Timer
from ..ranges import Range
from ..registry import register
from .common import Fill, TargetScores, check_score, explain_each, geometry, run_set, to_input

#: Most superpixels the exact mode enumerates (2**16 coalitions).
MAX_EXACT = 16


def kernel_coalitions(num_samples: int, num_segments: int, seed: int) -> np.ndarray:
    """(num_samples, M) uint8 coalitions drawn from the Shapley kernel; row 0 keeps every
    superpixel, row 1 none.

    The other rows have a size ``k`` in 1..M-1 drawn with probability proportional to
    ``(M - 1) / (k (M - k))`` (the kernel summed over the ``C(M, k)`` coalitions of that size),
    then a coalition of that size uniformly, from ``numpy.random.default_rng(seed)``. Sampled so,
    each coalition enters the regression with weight 1 (Lundberg & Lee 2017, sec. 4.1).
    """
    n, m = int(num_samples), int(num_segments)
    keep = np.zeros((n, m), np.uint8)
    keep[0] = 1
    rest = n - 2
    if rest and m > 1:
        rng = np.random.default_rng(seed)
        k = np.arange(1, m)
        p = (m - 1) / (k * (m - k))
        size = rng.choice(k, size=rest, p=p / p.sum())
        rank = np.argsort(np.argsort(rng.random((rest, m)), axis=1), axis=1)
        keep[2:] = rank < size[:, None]
    return keep  # (one superpixel: every other row is "none", which adds nothing)


def all_coalitions(num_segments: int) -> np.ndarray:
    """(2**M, M) uint8: every coalition once, row ``r`` keeps superpixel ``j`` when bit ``j`` of
    ``2**M - 1 - r`` is set (row 0 keeps all, the last row none)."""
    m = int(num_segments)
    codes = (1 << m) - 1 - np.arange(1 << m, dtype=np.int64)
    return ((codes[:, None] >> np.arange(m)) & 1).astype(np.uint8)


def exact_shapley(values: np.ndarray, num_segments: int) -> np.ndarray:
    """Shapley values from the scores of every coalition (in :func:`all_coalitions`' order).

    ``phi_j = sum_{S without j} |S|! (M - |S| - 1)! / M! (v(S + j) - v(S))`` (Shapley 1953;
    Lundberg & Lee 2017, eq. 8), with ``v`` the score.
    """
    m = int(num_segments)
    codes = np.arange(1 << m, dtype=np.int64)
    v = np.asarray(values, np.float64)[::-1]  # v[code]: the score of the coalition ``code``
    size = ((codes[:, None] >> np.arange(m)) & 1).sum(axis=1)
    w = np.array([math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m)
                  for s in range(m)])
    phi = np.empty(m)
    for j in range(m):
        without = codes[(codes >> j) & 1 == 0]
        phi[j] = (w[size[without]] * (v[without | (1 << j)] - v[without])).sum()
    return phi


def kernel_fit(keep: np.ndarray, values: np.ndarray, full: float, empty: float) -> np.ndarray:
    """Shapley-value estimates from sampled coalitions: least squares of ``v(z) - v(none)`` on
    ``z`` (weights 1, the kernel being in the sampling), under the efficiency constraint
    ``sum phi = v(all) - v(none)`` (Lundberg & Lee 2017, sec. 4.1), solved by eliminating the last
    superpixel. Coalitions with every or no superpixel carry no information and are skipped."""
    m = keep.shape[1]
    delta = full - empty
    if m == 1:
        return np.array([delta])
    z = keep.astype(np.float64)
    inner = (z.sum(axis=1) > 0) & (z.sum(axis=1) < m)
    z, y = z[inner], np.asarray(values, np.float64)[inner] - empty
    if not len(z):
        raise OptionError("kernelshap: no coalition besides all and none; raise num_samples")
    a = z[:, :-1] - z[:, -1:]
    head = np.linalg.lstsq(a, y - z[:, -1] * delta, rcond=None)[0]
    return np.append(head, delta - head.sum())


@register
class KernelShap(Explainer):
    """KernelSHAP on superpixels: Shapley values of LIME's superpixels for the target's score.

    Args:
        model: an :class:`onnxviz.Model`.
        num_samples: sampled coalitions, including the two ends (all superpixels, none; at
            least 3); ignored with ``exact``.
        exact: evaluate every one of the ``2**M`` coalitions and return the exact Shapley values
            (at most 16 superpixels: 65,536 model runs).
        segmentation, segments, kernel_size, max_dist, ratio, n_segments, compactness, scale,
            fill: the superpixels and what hidden ones show, as for ``lime``.
        score: ``"probability"`` (softmax) or ``"logit"``.
        seed: seed of the coalitions (and quickshift's tie-breaking).
        batch_size: images per ONNX Runtime call.
        progress: show a progress bar (or a callable ``f(done, total)``).
    """

    name = "kernelshap"
    family = "perturbation"
    ranges: ClassVar[dict] = {"num_samples": Range(int, 3, 100_000)}
    summary = "Shapley values of superpixels: Shapley-kernel regression or exact (Lundberg & Lee 2017)"

    def __init__(self, model, *, num_samples=1000, exact=False, segmentation="quickshift",
                 segments=None, kernel_size=4.0, max_dist=200.0, ratio=0.2, n_segments=50,
                 compactness=10.0, scale=100.0, fill="mean", score="probability", seed=0,
                 batch_size=32, progress=False):
        super().__init__(model, num_samples=num_samples, exact=bool(exact),
                         segmentation=segmentation, kernel_size=kernel_size, max_dist=max_dist,
                         ratio=ratio, n_segments=n_segments, compactness=compactness, scale=scale,
                         fill=fill, score=score, seed=seed, batch_size=batch_size)
        check_positive_ints(num_samples=num_samples, batch_size=batch_size)
        if segmentation not in SEGMENTATIONS:
            raise OptionError(f"segmentation must be one of {', '.join(SEGMENTATIONS)}, "
                              f"got {segmentation!r}")
        self.geo = geometry(model)
        self.segments = None if segments is None else relabel(segments, self.geo.size)
        self.seg_options = {"kernel_size": kernel_size, "max_dist": max_dist, "ratio": ratio,
                            "n_segments": n_segments, "compactness": compactness, "scale": scale}
        self.fill, self.score = Fill(model, fill, self.geo), check_score(score)
        self.num_samples, self.exact = int(num_samples), bool(exact)
        self.segmentation, self.seed = segmentation, int(seed)
        self.batch_size, self.progress = int(batch_size), progress

    def explain(self, images, target=None) -> list[Explanation]:
        """One :class:`Explanation` per image: ``raw`` the Shapley values (S,), ``heatmap`` each
        superpixel painted with its value; ``extras["base_value"]`` is the score with every
        superpixel hidden, so ``base_value + raw.sum()`` is the explained score."""
        return explain_each(self.model, images, target, self.geo, self._one)

    def superpixels(self, pixels: np.ndarray) -> np.ndarray:
        """The (H, W) superpixel labels this explainer uses for an image's pixels."""
        if self.segments is not None:
            return self.segments
        return segment(pixels, self.segmentation, seed=self.seed, **self.seg_options)

    def _one(self, px, target) -> Explanation:
        timer = Timer()
        geo = self.geo
        with timer("segment"):
            seg = self.superpixels(px)
        m = int(seg.max()) + 1
        if self.exact and m > MAX_EXACT:
            raise OptionError(f"kernelshap: exact mode enumerates 2**M coalitions and takes at "
                              f"most {MAX_EXACT} superpixels; this image has {m}: pass fewer "
                              "(n_segments with segmentation='slic' or 'grid') or drop exact")
        with timer("prepare"):
            x0 = to_input(self.model, px, geo)
            fill_x = self.fill.sample(px, segments=seg)
            keep = all_coalitions(m) if self.exact else kernel_coalitions(self.num_samples, m,
                                                                           self.seed)
        got = TargetScores(self.model, target, len(keep))

        def fill(start, stop, slot):
            lime_batch(x0, fill_x, seg, keep, start, slot.x[: stop - start], geo.channels_last)

        run_set(self.model, len(keep), self.batch_size, geo, fill,
                lambda start, stop, slot, s: got.add(start, stop, s), score=self.score,
                timer=timer, progress=self.progress, desc="kernelshap")
        with timer("fit"):
            v, t = got.values, got.index
            empty = v[-1] if self.exact else v[1]
            phi = exact_shapley(v, m) if self.exact else kernel_fit(keep, v, v[0], empty)
        e = Explanation(
            heatmap=phi[seg].astype(np.float32), raw=phi, target=t,
            label=self.model.label_of(t), score=float(v[0]), method=self.name,
            params=dict(self.params), image=px,
            extras={"base_value": float(empty), "num_segments": m, "forwards": len(keep),
                    "exact": self.exact})
        e.timings = timer.result()
        return e
