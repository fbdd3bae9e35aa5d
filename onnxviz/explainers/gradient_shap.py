"""Gradient SHAP: expected gradients between the image and baselines drawn from a distribution.

Lundberg & Lee 2017 (https://arxiv.org/abs/1705.07874, sec. 5, "Deep SHAP" and the gradient
explainer of the ``shap`` package); Erion et al. 2021 (https://arxiv.org/abs/1906.10670, eq. 4,
"expected gradients"). ``raw`` and ``heatmap`` are as for :mod:`.saliency`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from . import _gradient as G
from . import baselines as B
from .ranges import BASELINE_SET
from .registry import register
from .saliency import InputGradientExplainer

BASELINES = ("zero", "black", "uniform")


def draws(seed: int, samples: int, shape: tuple, n_baselines: int):
    """The random draws of Gradient SHAP, the same for every image (so that a result does not
    depend on the batch it is in).

    Returns:
        ``(noise, alpha, index)``: (samples, *shape) standard normal noise, (samples,) positions
        on the path drawn uniformly in [0, 1), (samples,) indices into the baselines.
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((samples, *shape))
    alpha = rng.uniform(0.0, 1.0, samples)
    index = rng.integers(0, n_baselines, samples)
    return noise, alpha, index


@register
class GradientShap(InputGradientExplainer):
    """Gradient SHAP (Lundberg & Lee 2017; Erion et al. 2021, eq. 4).

    For each of ``samples`` draws: noise ``e ~ N(0, stdev^2)`` added to the input
    (``x~ = x + e``), a baseline ``b`` drawn from the baselines and ``a ~ U(0, 1)``; the draw's
    attribution is ``(x~ - b) * dS/dx(b + a (x~ - b))``, and the result is their mean, an estimate
    of the SHAP values of the model linearised around the path. With ``multiply_by_inputs=False``
    (Captum's flag) the draw's attribution is the gradient alone.

    Args:
        model: an :class:`onnxviz.Model`.
        samples: draws per image.
        stdev: standard deviation of the noise, in the units of the model's input tensor.
        baseline: the baselines drawn from: ``"zero"`` (the zero tensor in model space),
            ``"black"`` (pixel value 0, preprocessed like the image), a grey level 0-255,
            ``"uniform"`` (``samples`` images of uniform random pixels, drawn from ``seed``), one
            baseline given as an array or an image file, or a set of K baselines: a (K, ...)
            array of model-space tensors (Captum's ``baselines``), K pixel images, or a list of
            images, files or tensors (see :mod:`onnxviz.explainers.baselines`). Each draw picks
            one of the set at random, as Captum's ``GradientShap``.
        seed: random seed of the draws.
        multiply_by_inputs: multiply each gradient by ``x~ - b``.
        reduce: channel reduction for the heatmap (see :class:`~.saliency.Saliency`).
        score: ``"logit"`` or ``"probability"`` (see :class:`~.saliency.Saliency`).
        batch_size: draws per run of the gradient graph.
    """

    name = "gradient_shap"
    summary = "Gradient SHAP: gradients x (input - baseline) averaged over random baselines"
    ranges: ClassVar[dict] = {"baseline": BASELINE_SET}

    def __init__(self, model, *, samples: int = 5, stdev: float = 0.0,
                 baseline: str | float | np.ndarray | list = "zero", seed: int = 0,
                 multiply_by_inputs: bool = True, reduce: str = "abs", score: str = "logit",
                 batch_size: int = 16):
        super().__init__(model, samples=samples, stdev=stdev, baseline=baseline, seed=seed,
                         multiply_by_inputs=multiply_by_inputs, reduce=reduce, score=score,
                         batch_size=batch_size)
        self._check()
        G.check_positive("samples", samples)
        self.reference = B.reference(model, baseline, "baseline", BASELINES, many=True)
        if self.reference is None:
            baseline = B.word_or_level(baseline, "baseline", BASELINES)
        self.baseline = baseline

    def baselines(self, x: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """The baselines drawn from, in model space: (M, ...)."""
        if self.reference is not None:  # "zero", a tensor, an image or a set
            return self.reference.model_space(self.model).astype(np.float64)
        if self.baseline == "uniform":
            base = B.uniform(self.model, self.params["seed"], self.params["samples"],
                             pixels.shape[1:])
        else:
            base = B.pixel_level(self.model, self.baseline, (1, *pixels.shape[1:]))
        return base.astype(np.float64)

    def attribute(self, x, targets, pixels, scores):
        s, bs = self.params["samples"], self.params["batch_size"]
        if scores is None:
            scores = self.forward(x)
        base = self.baselines(x, pixels)
        noise, alpha, index = draws(self.params["seed"], s, x.shape[1:], len(base))
        total = np.zeros(x.shape, np.float64)
        rows = np.arange(len(x) * s)
        shape = (-1, *([1] * (x.ndim - 1)))
        for part in G.chunks(len(rows), bs):
            img, k = np.divmod(rows[part], s)
            moved = x[img] + self.params["stdev"] * noise[k] - base[index[k]]
            points = base[index[k]] + alpha[k].reshape(shape) * moved
            g, _ = self.grads(points.astype(x.dtype), targets[img])
            np.add.at(total, img, moved * g if self.params["multiply_by_inputs"] else g)
        return (total / s).astype(np.float32), scores, [{} for _ in x]
