"""Input-gradient methods: saliency, SmoothGrad, Integrated Gradients, gradient x input.

Each computes an attribution per input value (``Explanation.raw``: float32 (H, W, C), channel-last
whatever the model's layout, in the units of the model's input tensor), reduced over channels into
``Explanation.heatmap`` with the ``reduce`` option. Nothing is normalised: the heatmap keeps the
attribution's units, as in Captum; :mod:`onnxviz.viz` scales for display. The score explained is
the pre-softmax score of the target class, or with ``score="probability"`` its softmax.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import OptionError
from . import _gradient as G
from . import baselines as B
from .base import Explainer, Explanation, Timer
from .ranges import IG_RULES, NT_TYPES, REDUCE, Range, Words  # noqa: F401  (REDUCE, NT_TYPES: saliency.REDUCE)
from .registry import register


class InputGradientExplainer(Explainer):
    """Shared pipeline: preprocess, resolve targets, :meth:`attribute`, reduce over channels.

    Subclasses implement :meth:`attribute`; their options always include ``reduce``, ``score``
    and ``batch_size``.
    """

    family: ClassVar[str] = "gradient"

    def _check(self) -> None:
        G.check_positive("batch_size", self.params["batch_size"])
        G.check_flags(multiply_by_inputs=self.params.get("multiply_by_inputs", True))

    @property
    def score(self) -> str:
        """What is differentiated: ``"logit"`` (also for subclasses without the option) or
        ``"probability"``."""
        return self.params.get("score", "logit")

    def grads(self, x: np.ndarray, targets: np.ndarray):
        """d score[target] / d input for each row of ``x``: (model-layout grads, scores), the
        score being the logit or the probability (option ``score``)."""
        name = self.model.input.name
        grads, _, scores = G.gradients(self.model, x, targets, [name], (),
                                       self.params["batch_size"], score=self.score)
        return grads[name], scores

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The explained scores of ``x`` (logits or probabilities), (N, K)."""
        s = self.model.forward(x, batch_size=self.params["batch_size"])
        return G.explained(self.model, s, self.score)

    def attribute(self, x, targets, pixels, scores):
        """Attributions for a batch.

        Args:
            x: (N, ...) model input tensor.
            targets: (N,) class indices.
            pixels: (N, H, W, 3) uint8 images at the model's input size (for pixel baselines).
            scores: (N, K) scores of ``x``, or ``None`` when not computed yet.

        Returns:
            ``(attributions, scores, extras)``: model-layout attributions, the (N, K) scores of
            ``x``, and one dict of method-specific results per image.
        """
        raise NotImplementedError

    def explain(self, images, target=None) -> list[Explanation]:
        m = self.model
        timer = Timer()
        pixels, x, targets, scores = G.prepare(m, images, target, self.params["batch_size"], timer)
        if scores is not None:
            scores = G.explained(m, scores, self.score)
        with timer("gradients"):
            attr, scores, extras = self.attribute(x, targets, pixels, scores)
        with timer("reduce"):
            raw = G.channels_last(np.asarray(attr, np.float32), m.input.layout)
            raw = G.image_shaped(m, raw)
            heat = G.reduce_channels(raw, self.params["reduce"]).astype(np.float32)
        times = timer.result(share=len(x))
        return [
            Explanation(
                heatmap=heat[i], raw=raw[i], target=int(t), label=m.label_of(int(t)),
                score=float(scores[i, t]), method=self.name, params=dict(self.params),
                timings=times, image=G.image_shaped(m, pixels)[i], extras=extras[i],
            )
            for i, t in enumerate(targets)
        ]


@register
class Saliency(InputGradientExplainer):
    """Vanilla gradient (Simonyan et al. 2014, https://arxiv.org/abs/1312.6034, sec. 3.1).

    Args:
        model: an :class:`onnxviz.Model`.
        reduce: channel reduction for the heatmap: ``"max_abs"`` (the paper's), ``"abs"`` (sum of
            absolute values) or ``"signed"`` (sum).
        score: ``"logit"`` (the score before the model's softmax) or ``"probability"`` (the
            softmax of the scores; the score itself for a regression model).
        batch_size: images per run of the gradient graph.
    """

    name = "saliency"
    summary = "Saliency: gradient of the score with respect to the input pixels"

    def __init__(self, model, *, reduce: str = "max_abs", score: str = "logit",
                 batch_size: int = 16):
        super().__init__(model, reduce=reduce, score=score, batch_size=batch_size)
        self._check()

    def attribute(self, x, targets, pixels, scores):
        grads, run_scores = self.grads(x, targets)
        return grads, run_scores if scores is None else scores, [{} for _ in x]


@register
class SmoothGrad(InputGradientExplainer):
    """SmoothGrad (Smilkov et al. 2017, https://arxiv.org/abs/1706.03825, eq. 3).

    The gradient averaged over ``samples`` copies of the input with Gaussian noise of standard
    deviation ``noise * (max(x) - min(x))`` added in the model's input space. Every image gets the
    same noise sequence from ``seed``, so a result does not depend on the batch it is in.
    ``nt_type`` aggregates the noisy gradients ``g_k`` as Captum's ``NoiseTunnel`` does:
    ``"smoothgrad"`` their mean, ``"smoothgrad_sq"`` the mean of ``g_k**2`` (Hooker et al. 2019,
    https://arxiv.org/abs/1806.10758, sec. 4), ``"vargrad"`` their variance ``mean(g_k**2) -
    mean(g_k)**2`` (Adebayo et al. 2018, https://arxiv.org/abs/1810.03307).

    Args:
        model: an :class:`onnxviz.Model`.
        samples: noisy copies per image.
        noise: noise level as a fraction of the input tensor's range (the paper's sigma ratio).
        nt_type: ``"smoothgrad"``, ``"smoothgrad_sq"`` or ``"vargrad"``.
        seed: random seed of the noise.
        reduce: channel reduction for the heatmap (see :class:`Saliency`).
        score: ``"logit"`` or ``"probability"`` (see :class:`Saliency`).
        batch_size: noisy inputs per run of the gradient graph.
    """

    name = "smoothgrad"
    summary = "SmoothGrad: saliency averaged over noisy copies of the image"

    def __init__(self, model, *, samples: int = 25, noise: float = 0.15,
                 nt_type: str = "smoothgrad", seed: int = 0, reduce: str = "max_abs",
                 score: str = "logit", batch_size: int = 16):
        super().__init__(model, samples=samples, noise=noise, nt_type=nt_type, seed=seed,
                         reduce=reduce, score=score, batch_size=batch_size)
        self._check()
        G.check_positive("samples", samples)
        if not isinstance(noise, (int, float)) or noise < 0:
            raise OptionError(f"noise must be a number >= 0, got {noise!r}")

    def attribute(self, x, targets, pixels, scores):
        s = self.params["samples"]
        if scores is None:
            scores = self.forward(x)
        eps = np.random.default_rng(self.params["seed"]).standard_normal((s, *x.shape[1:]))
        total = np.zeros(x.shape, np.float64)
        squares = np.zeros(x.shape, np.float64)
        rows = np.arange(len(x) * s)
        for part in G.chunks(len(rows), self.params["batch_size"]):
            img, k = np.divmod(rows[part], s)
            sigma = self.params["noise"] * (x[img].max(axis=(1, 2, 3)) - x[img].min(axis=(1, 2, 3)))
            noisy = (x[img] + sigma[:, None, None, None] * eps[k]).astype(np.float32)
            g, _ = self.grads(noisy, targets[img])
            np.add.at(total, img, g)
            np.add.at(squares, img, np.square(g, dtype=np.float64))
        mean, mean_sq = total / s, squares / s
        attr = {"smoothgrad": mean, "smoothgrad_sq": mean_sq,
                "vargrad": mean_sq - mean * mean}[self.params["nt_type"]]
        return attr.astype(np.float32), scores, [{} for _ in x]


#: Quadrature rules of Integrated Gradients, Captum's ``method`` names; ``"riemann"`` is
#: ``"riemann_right"`` (Sundararajan et al., eq. 3).
RULES = IG_RULES


def path_points(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``alpha`` in [0, 1] along the path and their quadrature weights, as Captum's
    ``approximation_methods`` (its alphas are these values rounded to float32).

    ``"riemann_left"``/``"riemann_right"``/``"riemann_middle"``: ``alpha_k = k/n``, ``(k+1)/n``,
    ``(k+1/2)/n`` (k = 0..n-1), weights ``1/n``; ``"riemann_trapezoid"``: ``alpha_k = k/(n-1)``,
    weights ``1/n`` with the two ends halved (Captum's: they sum to ``(n-1)/n``, not 1);
    ``"gausslegendre"``: Gauss-Legendre nodes and weights mapped to [0, 1].
    """
    G.check_choice("rule", rule, RULES)
    n = steps
    k = np.arange(n, dtype=np.float64)
    weights = np.full(n, 1.0 / n)
    if rule == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1), 0.5 * w
    if rule in ("riemann", "riemann_right"):
        return (k + 1) / n, weights
    if rule == "riemann_left":
        return k / n, weights
    if rule == "riemann_middle":
        return (k + 0.5) / n, weights
    if n < 2:
        raise OptionError("rule 'riemann_trapezoid' needs steps >= 2")
    weights[[0, -1]] /= 2
    return k / (n - 1), weights


@register
class IntegratedGradients(InputGradientExplainer):
    """Integrated Gradients (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365, eq. 1, 3).

    ``(x - x') * integral_0^1 dS/dx(x' + a (x - x')) da``, the integral approximated with ``steps``
    points by ``rule``. The baseline ``x'``: ``"black"`` (pixel 0), ``"blur"`` (the image blurred
    with a Gaussian of sigma = a tenth of its side) or a number (a uniform grey level, 0-255), built
    in pixel space and preprocessed like the image; ``"zero"`` (the zero input tensor, Captum's
    default), an array or an image file (see :mod:`onnxviz.explainers.baselines`).
    ``extras["completeness_gap"]`` is ``sum((x - x') * integral) - (S(x) - S(x'))``, zero for an
    exact integral (the paper's axiom).

    Args:
        model: an :class:`onnxviz.Model`.
        steps: points on the path.
        baseline: ``"black"``, ``"blur"``, a grey level 0-255, ``"zero"``, an array (model-space
            tensor or pixel image) or an image file.
        rule: ``"gausslegendre"``, ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``,
            ``"riemann_trapezoid"`` (Captum's methods) or ``"riemann"`` (= ``"riemann_right"``).
        multiply_by_inputs: multiply the integral by ``x - x'`` (Captum's flag); false gives the
            integrated gradient alone.
        reduce: channel reduction for the heatmap (see :class:`Saliency`).
        score: ``"logit"`` or ``"probability"`` (see :class:`Saliency`).
        batch_size: path points per run of the gradient graph.
    """

    name = "integrated_gradients"
    summary = "Integrated Gradients: gradients integrated along a path from a baseline image"
    ranges: ClassVar[dict] = {"baseline": Range(float, 0, 255, text=True, array=True,
                                                words=("zero", "black", "blur")),
                              "rule": Words(IG_RULES)}

    def __init__(self, model, *, steps: int = 50, baseline: str | float = "black",
                 rule: str = "gausslegendre", multiply_by_inputs: bool = True,
                 reduce: str = "abs", score: str = "logit", batch_size: int = 16):
        super().__init__(model, steps=steps, baseline=baseline, rule=rule,
                         multiply_by_inputs=multiply_by_inputs, reduce=reduce, score=score,
                         batch_size=batch_size)
        self._check()
        G.check_positive("steps", steps)
        path_points(rule, steps)
        self.reference = B.reference(model, baseline, "baseline", ("black", "blur"))
        if self.reference is None:
            baseline = B.word_or_level(baseline, "baseline", ("black", "blur"))
        self.baseline = baseline

    def baseline_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """The baseline images in pixel space, (N, H, W, 3) float32 (for the pixel baselines)."""
        b = self.baseline
        if b == "black":
            return np.zeros(pixels.shape, np.float32)
        if b == "blur":
            import cv2

            sigma = max(pixels.shape[1:3]) / 10
            return np.stack([cv2.GaussianBlur(p.astype(np.float32), (0, 0), sigma) for p in pixels])
        return np.full(pixels.shape, float(b), np.float32)

    def baselines(self, pixels: np.ndarray) -> np.ndarray:
        """The baselines in model space, one per image: (N, ...) float32."""
        if self.reference is None:
            return self.model.normalize(self.baseline_pixels(pixels)).astype(np.float32)
        base = self.reference.model_space(self.model)
        return np.repeat(base, len(pixels), axis=0)

    def attribute(self, x, targets, pixels, scores):
        m, bs, steps = self.model, self.params["batch_size"], self.params["steps"]
        base = self.baselines(pixels)
        both = G.explained(m, m.forward(np.concatenate([x, base]), batch_size=bs),
                           self.score)
        scores = both[: len(x)] if scores is None else scores
        alphas, weights = path_points(self.params["rule"], steps)
        total = np.zeros(x.shape, np.float64)
        rows = np.arange(len(x) * steps)
        for part in G.chunks(len(rows), bs):
            img, k = np.divmod(rows[part], steps)
            a = alphas[k].reshape(-1, 1, 1, 1)
            points = (base[img] + a * (x[img] - base[img])).astype(np.float32)
            g, _ = self.grads(points, targets[img])
            wg = weights[k].astype(np.float32).reshape(-1, 1, 1, 1) * g
            for i in np.unique(img):  # a chunk's rows are consecutive: few images per chunk
                total[i] += wg[img == i].sum(axis=0, dtype=np.float64)
        attr = ((x - base) * total).astype(np.float32)
        n = np.arange(len(x))
        delta = scores[n, targets] - both[len(x):][n, targets]
        gaps = attr.reshape(len(x), -1).sum(axis=1, dtype=np.float64) - delta
        extras = [
            {"completeness_gap": float(gaps[i]), "baseline_score": float(both[len(x) + i, targets[i]])}
            for i in n
        ]
        if not self.params["multiply_by_inputs"]:
            attr = total.astype(np.float32)
        return attr, scores, extras


@register
class GradientXInput(InputGradientExplainer):
    """Gradient x input (Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713): ``x * dS/dx``.

    Args:
        model: an :class:`onnxviz.Model`.
        reduce: channel reduction for the heatmap (see :class:`Saliency`).
        score: ``"logit"`` or ``"probability"`` (see :class:`Saliency`).
        batch_size: images per run of the gradient graph.
    """

    name = "gradient_x_input"
    summary = "Gradient x input: the input times its gradient"

    def __init__(self, model, *, reduce: str = "abs", score: str = "logit",
                 batch_size: int = 16):
        super().__init__(model, reduce=reduce, score=score, batch_size=batch_size)
        self._check()

    def attribute(self, x, targets, pixels, scores):
        grads, run_scores = self.grads(x, targets)
        return x * grads, run_scores if scores is None else scores, [{} for _ in x]
