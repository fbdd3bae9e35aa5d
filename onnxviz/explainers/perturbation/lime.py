"""LIME on superpixels: a weighted linear surrogate of the model around the image.

Ribeiro, Singh & Guestrin, "Why Should I Trust You? Explaining the Predictions of Any
Classifier", KDD 2016 (https://arxiv.org/abs/1602.04938), sec. 3.3-3.4: samples switch
superpixels off, a kernel ``pi_x`` on their cosine distance to the image weighs them, and a ridge
regression of the class score on the on/off matrix gives each superpixel its weight (eq. 1-2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import OptionError
from ...perturb import (
    lime_batch, lime_kernel, relabel, sample_matrix, segment, weighted_ridge,
)
from ...perturb.segment import METHODS as SEGMENTATIONS
from ..base import Explainer, Explanation, Timer
from ..registry import register
from .._checks import check_positive_ints
from .common import Fill, check_score, explain_each, geometry, resolve, run_set, to_input


@dataclass(repr=False)
class LimeExplanation(Explanation):
    """An :class:`Explanation` that keeps LIME's samples, so any label can be explained later.

    Attributes:
        segments: int64 (H, W) superpixel labels 0..S-1.
        samples: uint8 (num_samples, S) on/off matrix (row 0: the unperturbed image).
        sample_weights: (num_samples,) kernel weights of the samples.
        scores: (num_samples, K) explained scores of the samples.
        alpha: the ridge penalty.
    """

    segments: np.ndarray | None = None
    samples: np.ndarray | None = None
    sample_weights: np.ndarray | None = None
    scores: np.ndarray | None = None
    alpha: float = 1.0
    fits: dict = field(default_factory=dict, repr=False)

    def fit(self, label: int | None = None) -> tuple[np.ndarray, float, float]:
        """(weights per superpixel, intercept, weighted R^2) of the surrogate for ``label``."""
        label = self.target if label is None else int(label)
        if label not in self.fits:
            if not 0 <= label < self.scores.shape[1]:
                raise OptionError(f"label {label} is out of range 0..{self.scores.shape[1] - 1}")
            self.fits[label] = weighted_ridge(self.samples, self.scores[:, label],
                                              self.sample_weights, self.alpha)
        return self.fits[label]

    def local_exp(self, label: int | None = None) -> list[tuple[int, float]]:
        """``(superpixel, weight)`` pairs by decreasing ``|weight|`` (lime's ``local_exp[label]``)."""
        w = self.fit(label)[0]
        order = np.argsort(-np.abs(w), kind="stable")
        return [(int(i), float(w[i])) for i in order]

    def image_and_mask(self, label: int | None = None, positive_only: bool = True,
                       negative_only: bool = False, num_features: int = 5,
                       hide_rest: bool = False, min_weight: float = 0.0):
        """The image showing the most important superpixels, and their mask.

        Same meaning as lime's ``ImageExplanation.get_image_and_mask``.

        Args:
            label: class to show (default: the explained target).
            positive_only: keep only superpixels that speak for the class.
            negative_only: keep only superpixels that speak against it.
            num_features: how many superpixels, by decreasing ``|weight|``.
            hide_rest: black out everything else (else keep the image).
            min_weight: ignore superpixels whose ``|weight|`` is at most this.

        Returns:
            ``(image, mask)``: the picture (a float copy when ``hide_rest``) and an (H, W) mask,
            1 for kept superpixels (and -1 for negative ones when showing both signs).
        """
        if positive_only and negative_only:
            raise OptionError("positive_only and negative_only cannot both be set")
        exp, seg, image = self.local_exp(label), self.segments, self.image
        mask = np.zeros(seg.shape, seg.dtype)
        temp = np.zeros(image.shape) if hide_rest else image.copy()
        if positive_only or negative_only:
            if positive_only:
                fs = [f for f, w in exp if w > 0 and w > min_weight][:num_features]
            else:
                fs = [f for f, w in exp if w < 0 and abs(w) > min_weight][:num_features]
            on = np.isin(seg, fs)
            temp[on] = image[on]
            mask[on] = 1
            return temp, mask
        for f, w in exp[:num_features]:
            if abs(w) < min_weight:
                continue
            on = seg == f
            mask[on] = -1 if w < 0 else 1
            temp[on] = image[on]
            temp[on, 0 if w < 0 else 1] = np.max(image)
        return temp, mask


@register
class Lime(Explainer):
    """Fit a weighted ridge surrogate on random superpixel on/off samples.

    Args:
        model: an :class:`onnxviz.Model`.
        num_samples: samples, including sample 0 (the unperturbed image), as lime counts them.
        segmentation: ``"quickshift"``, ``"slic"``, ``"felzenszwalb"`` or ``"grid"``.
        segments: your own (H, W) integer labels at the model's input size (overrides
            ``segmentation``).
        kernel_size, max_dist, ratio: quickshift's parameters (lime's defaults).
        n_segments: superpixel count for ``"slic"`` and ``"grid"``.
        compactness: SLIC's compactness.
        scale: Felzenszwalb's scale.
        fill: hidden superpixels show ``"mean"`` (their own mean colour, lime's default),
            ``"gray"``, ``"black"``, ``"blur"``, a number or one number per channel, or any
            occlusion fill: ``"zero"``, a model-space tensor or an image (see
            :class:`.common.Fill`).
        kernel_width: width of the exponential kernel on the cosine distance.
        alpha: ridge penalty.
        top_labels: also fit the surrogate for the model's top classes (``extras["top_labels"]``).
        score: ``"probability"`` (softmax, as lime's ``classifier_fn``) or ``"logit"``.
        seed: seed of the samples (and quickshift's tie-breaking).
        batch_size: images per ONNX Runtime call.
        progress: show a progress bar (or a callable ``f(done, total)``).
    """

    name = "lime"
    family = "perturbation"
    summary = "weighted linear surrogate on superpixels switched on and off (Ribeiro et al. 2016)"

    def __init__(self, model, *, num_samples=1000, segmentation="quickshift", segments=None,
                 kernel_size=4.0, max_dist=200.0, ratio=0.2, n_segments=50, compactness=10.0,
                 scale=100.0, fill="mean", kernel_width=0.25, alpha=1.0, top_labels=5,
                 score="probability", seed=0, batch_size=32, progress=False):
        super().__init__(model, num_samples=num_samples, segmentation=segmentation,
                         kernel_size=kernel_size, max_dist=max_dist, ratio=ratio,
                         n_segments=n_segments, compactness=compactness, scale=scale, fill=fill,
                         kernel_width=kernel_width, alpha=alpha, top_labels=top_labels,
                         score=score, seed=seed, batch_size=batch_size)
        check_positive_ints(num_samples=num_samples, batch_size=batch_size)
        if segmentation not in SEGMENTATIONS:
            raise OptionError(f"segmentation must be one of {', '.join(SEGMENTATIONS)}, "
                              f"got {segmentation!r}")
        if kernel_width <= 0 or alpha < 0:
            raise OptionError(f"kernel_width must be > 0 and alpha >= 0, got {kernel_width}, {alpha}")
        self.geo = geometry(model)
        self.segments = None if segments is None else relabel(segments, self.geo.size)
        self.seg_options = dict(kernel_size=kernel_size, max_dist=max_dist, ratio=ratio,
                                n_segments=n_segments, compactness=compactness, scale=scale)
        self.fill, self.score = Fill(model, fill, self.geo), check_score(score)
        self.num_samples, self.segmentation = int(num_samples), segmentation
        self.kernel_width, self.alpha = float(kernel_width), float(alpha)
        self.top_labels = int(top_labels or 0)
        self.seed, self.batch_size, self.progress = int(seed), int(batch_size), progress

    def explain(self, images, target=None) -> list[LimeExplanation]:
        """One :class:`LimeExplanation` per image: ``heatmap`` paints each superpixel's weight.

        ``raw`` holds the weights (S,); ``extras`` the intercept, the weighted R^2 of the
        surrogate (``r2``), its prediction on the image (``local_pred``) and ``top_labels``.
        """
        return explain_each(self.model, images, target, self.geo, self._one)

    def superpixels(self, pixels: np.ndarray) -> np.ndarray:
        """The (H, W) superpixel labels this explainer uses for an image's pixels."""
        if self.segments is not None:
            return self.segments
        return segment(pixels, self.segmentation, seed=self.seed, **self.seg_options)

    def _one(self, px, target) -> LimeExplanation:
        timer = Timer()
        geo = self.geo
        with timer("segment"):
            seg = self.superpixels(px)
        with timer("prepare"):
            x0 = to_input(self.model, px, geo)
            fill_x = self.fill.sample(px, segments=seg)
            keep = sample_matrix(self.num_samples, int(seg.max()) + 1, self.seed)
        scores = None

        def fill(start, stop, slot):
            lime_batch(x0, fill_x, seg, keep, start, slot.x[: stop - start], geo.channels_last)

        def consume(start, stop, slot, s):
            nonlocal scores
            if scores is None:
                scores = np.empty((self.num_samples, s.shape[1]), np.float32)
            scores[start:stop] = s

        run_set(self.model, self.num_samples, self.batch_size, geo, fill, consume,
                score=self.score, timer=timer, progress=self.progress, desc="lime")
        with timer("surrogate"):
            t = resolve(self.model, target, scores[0])
            top = [int(i) for i in np.argsort(-scores[0], kind="stable")[: self.top_labels]]
            e = LimeExplanation(
                heatmap=np.empty(0), raw=None, target=t, label=self.model.label_of(t),
                score=float(scores[0, t]), method=self.name, params=dict(self.params),
                image=px, segments=seg, samples=keep,
                sample_weights=lime_kernel(keep, self.kernel_width), scores=scores,
                alpha=self.alpha)
            labels = list(dict.fromkeys([t, *top]))
            coef, intercept, r2 = weighted_ridge(keep, scores[:, labels], e.sample_weights,
                                                 self.alpha)
            for k, lab in enumerate(labels):
                e.fits[lab] = (coef[k], float(intercept[k]), float(r2[k]))
            w, b, r = e.fits[t]
            e.raw = w
            e.heatmap = w[seg].astype(np.float32)
            e.extras = {"intercept": b, "r2": r, "local_pred": float(b + w.sum()),
                        "top_labels": top, "num_segments": int(seg.max()) + 1,
                        "forwards": self.num_samples}
        e.timings = timer.result()
        return e
