"""Modified-gradient methods: backward passes whose rules differ from the gradient's for some ops.

Each method here runs onnxviz's own reverse walk with a rule set of
:mod:`onnxviz.autodiff.rulesets` (``gradient_model(..., rules=...)``): the ops the set names get
its rules, every other op its true gradient rule. The result is an attribution per input value
(``Explanation.raw``: float32 (H, W, C), channel-last, in the model input's units), reduced over
channels into ``Explanation.heatmap`` with ``reduce``, as for :mod:`.saliency`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from . import _gradient as G
from . import baselines as B
from ._checks import check_seed
from .cam import combine
from .ranges import BASELINE_SET, Range, Words
from .registry import register
from .saliency import InputGradientExplainer
from ..model.tokens import layer_view, resolve_map_layer


class ModifiedGradientExplainer(InputGradientExplainer):
    """The input-gradient pipeline with the backward rules of :attr:`rule_set`."""

    rule_set: ClassVar[str] = ""

    def __init__(self, model, *, reduce: str = "max_abs", batch_size: int = 16, **more):
        super().__init__(model, reduce=reduce, batch_size=batch_size, **more)
        self._check()

    def grads(self, x: np.ndarray, targets: np.ndarray, reference: np.ndarray | None = None):
        """The modified gradient of score[target] at the input, per row of ``x`` (``reference``:
        the rows' reference inputs, for rule sets that compare with one)."""
        name = self.model.input.name
        self._warn_if_unchanged()
        grads, _, scores = G.gradients(self.model, x, targets, [name], (), self.params["batch_size"],
                                       rules=self.rule_set, reference=reference)
        return grads[name], scores

    @classmethod
    def applies_to(cls, model) -> str | None:
        """Not applicable (skipped by ``all``) when the model has none of the ops the rule set
        changes: the result would be the plain gradient's (named, it still runs, with a warning)."""
        from ..autodiff.rulesets import rule_set

        if not cls.rule_set:  # chosen per instance (LRP's rules per layer type)
            return None
        changed = set(rule_set(cls.rule_set))
        if not changed & {n.op_type for n in model.proto.graph.node}:
            return (f"{cls.name} changes the rules of {'/'.join(sorted(changed))}, which this "
                    "model does not have: it would be the plain gradient")
        return None

    def _warn_if_unchanged(self) -> None:
        """Warn when the model has none of the ops the rule set changes (guided backpropagation
        of a ReLU6 network is its plain gradient, as with Captum's hooks on nn.ReLU only)."""
        import warnings

        from ..autodiff.rulesets import rule_set

        changed = set(rule_set(self.rule_set))
        if not changed & {n.op_type for n in self.model.proto.graph.node}:
            warnings.warn(f"{self.name}: the model has no {'/'.join(sorted(changed))} node, whose "
                          "rules this method changes: the result is the plain gradient's",
                          UserWarning, stacklevel=4)

    def attribute(self, x, targets, pixels, scores):
        grads, run_scores = self.grads(x, targets)
        return grads, run_scores if scores is None else scores, [{} for _ in x]


def path_nodes(model) -> tuple[list, set]:
    """The nodes between the model input and the score, and every tensor computed from the input
    (the others are constants of the backward pass)."""
    nodes = list(model.proto.graph.node)  # ONNX keeps nodes in topological order
    fed = {model.input.name}
    for n in nodes:
        if any(i in fed for i in n.input):
            fed.update(o for o in n.output if o)
    up = {model.score_output}
    for n in reversed(nodes):
        if any(o in up for o in n.output):
            up.update(i for i in n.input if i)
    return [n for n in nodes if any(o in up for o in n.output) and any(i in fed for i in n.input)], fed


@register
class GuidedBackprop(ModifiedGradientExplainer):
    """Guided backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806, fig. 1).

    The gradient of the score, except that every ReLU passes back only positive signal where its
    unit was active: ``R_in = ReLU(R_out) * (x > 0)``. Other ops keep their gradient rules.

    Args:
        model: an :class:`onnxviz.Model`.
        reduce: channel reduction for the heatmap (see :class:`~.saliency.Saliency`).
        batch_size: images per run of the backward graph.
    """

    name = "guided_backprop"
    summary = "Guided backpropagation: gradients with ReLUs that pass back only positive signal"
    rule_set = "guided_backprop"

    def __init__(self, model, *, reduce: str = "max_abs", batch_size: int = 16):
        super().__init__(model, reduce=reduce, batch_size=batch_size)


@register
class Deconvolution(ModifiedGradientExplainer):
    """Deconvolution (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901, sec. 2.1).

    The backward pass of the gradient with every ReLU applied to the signal coming back instead
    of masked by the forward activation: ``R_in = ReLU(R_out)``.

    Args:
        model: an :class:`onnxviz.Model`.
        reduce: channel reduction for the heatmap (see :class:`~.saliency.Saliency`).
        batch_size: images per run of the backward graph.
    """

    name = "deconvolution"
    summary = "Deconvolution: gradients with ReLUs applied to the signal passed back"
    rule_set = "deconvolution"

    def __init__(self, model, *, reduce: str = "max_abs", batch_size: int = 16):
        super().__init__(model, reduce=reduce, batch_size=batch_size)


@register
class GuidedGradCAM(ModifiedGradientExplainer):
    """Guided Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391, sec. 3.1).

    Guided backpropagation times the layer's Grad-CAM map (``ReLU(sum_k w_k A_k)`` with
    ``w_k = mean_ij dS/dA_kij``, computed with the true gradient) upsampled to the input size,
    the same map for every channel. ``extras["layer"]`` names the layer used.

    Args:
        model: an :class:`onnxviz.Model`.
        layer: the Grad-CAM layer (see :class:`~.cam.CAMExplainer`); ``None`` picks the last map
            before the score.
        upsample: ``"bilinear"`` (half-pixel centres, the paper's and onnxviz's Grad-CAM heatmap)
            or ``"nearest"`` (each input pixel takes the map cell ``floor(i h / H)``, Captum's
            default).
        reduce: channel reduction for the heatmap (see :class:`~.saliency.Saliency`).
        batch_size: images per run of the backward graphs.
    """

    name = "guided_gradcam"
    summary = "Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map"
    rule_set = "guided_backprop"

    def __init__(self, model, *, layer: str | None = None, upsample: str = "bilinear",
                 reduce: str = "max_abs", batch_size: int = 16):
        super().__init__(model, layer=layer, upsample=upsample, reduce=reduce,
                         batch_size=batch_size)
        self.layer = resolve_map_layer(model, layer)
        self.view = layer_view(model, self.layer)

    def attribute(self, x, targets, pixels, scores):
        m, t = self.model, self.layer.tensor
        guided, run_scores = self.grads(x, targets)
        grads, acts, _ = G.gradients(m, x, targets, [t], [t], self.params["batch_size"])
        acts = self.view.to_nchw(acts[t])
        cam = combine(self.view.to_nchw(grads[t]).mean(axis=(2, 3)), acts)
        if self.params["upsample"] == "nearest":
            (h, w), (rows, cols) = cam.shape[1:], m.input.size
            up = cam[:, (np.arange(rows) * h) // rows][:, :, (np.arange(cols) * w) // cols]
        else:
            up = G.upsample(cam, m.input.size)
        up = up[:, None] if m.input.layout == "NCHW" else up[..., None]
        extras = [{"layer": self.layer.name} for _ in x]
        return guided * up, run_scores if scores is None else scores, extras


#: DeepLIFT's rules for the nonlinearities: option value -> rule set.
DEEPLIFT_RULES = {"rescale": "deeplift", "reveal_cancel": "deeplift_reveal_cancel"}


@register
class DeepLift(ModifiedGradientExplainer):
    """DeepLIFT, rescale rule (Shrikumar et al. 2017, https://arxiv.org/abs/1704.02685, eq. 3).

    Attributions ``(x - x') * m``, where the multipliers ``m`` are back-propagated like the
    gradient except through elementwise activations (Relu, LeakyRelu, Elu, Sigmoid, Tanh,
    Softplus), which pass back ``(f(z) - f(z')) / (z - z')`` for their input ``z`` and its value
    ``z'`` on the reference ``x'``, and MaxPool, which splits ``y - y'`` at ``max(y, y')``
    between the input's and the reference's argmax (Captum's rule). The attributions sum to
    ``S(x) - S(x')`` (summation-to-delta, eq. 1); ``extras["convergence_delta"]`` is the
    difference that remains. Softmax between input and score is refused (no rule for it here).

    Args:
        model: an :class:`onnxviz.Model`.
        baseline: the reference ``x'``: ``"zero"`` (the zero tensor in the model's input space,
            Captum's default), ``"black"`` (pixel value 0, preprocessed like the image), a grey
            level 0-255, an array (a model-space tensor as Captum's ``baselines``, or a pixel
            image) or an image file (see :mod:`onnxviz.explainers.baselines`).
        rule: ``"rescale"``, or ``"reveal_cancel"``: RevealCancel (sec. 3.5.3) for each
            nonlinearity fed straight by a Conv, Gemm or MatMul, whose difference is split into
            the layer's positive and negative terms (:mod:`onnxviz.autodiff.reveal_cancel`);
            the rescale rule elsewhere.
        multiply_by_inputs: ``False``: the multipliers ``m`` themselves, without the factor
            ``x - x'`` (Captum's flag of the same name); the convergence delta is still that of
            ``(x - x') * m``.
        reduce: channel reduction for the heatmap (see :class:`~.saliency.Saliency`).
        batch_size: images per run of the backward graph.
    """

    name = "deeplift"
    summary = "DeepLIFT (rescale rule): differences from a reference input, propagated back"
    rule_set = "deeplift"

    @classmethod
    def applies_to(cls, model) -> str | None:
        reason = super().applies_to(model)
        if reason:
            return reason
        nodes, _ = path_nodes(model)
        soft = [n.name or n.output[0] for n in nodes if n.op_type in ("Softmax", "LogSoftmax")]
        if soft:
            return (f"deeplift has no rule for Softmax, which lies between the input and the score "
                    f"(node {soft[0]!r}, as in attention)")
        return None

    words: ClassVar[tuple] = ("zero", "black")  # the baselines named by a word
    many: ClassVar[bool] = False  # whether baseline takes a set of baselines
    ranges: ClassVar[dict] = {"baseline": Range(float, 0, 255, text=True, array=True,
                                                words=("zero", "black")),
                              "rule": Words(tuple(DEEPLIFT_RULES))}

    def __init__(self, model, *, baseline: str | float | np.ndarray = "zero",
                 rule: str = "rescale", multiply_by_inputs: bool = True, reduce: str = "abs",
                 batch_size: int = 16):
        super().__init__(model, baseline=baseline, rule=rule, multiply_by_inputs=multiply_by_inputs,
                         reduce=reduce, batch_size=batch_size)
        self._check_baseline()

    def _check_baseline(self) -> None:
        G.check_choice("rule", self.params["rule"], DEEPLIFT_RULES)
        self.rule_set = DEEPLIFT_RULES[self.params["rule"]]
        baseline = self.params["baseline"]  # multiply_by_inputs: checked by _check()
        self.given = B.reference(self.model, baseline, "baseline", self.words, many=self.many)
        if self.given is None:
            baseline = B.word_or_level(baseline, "baseline", self.words)
        self.baseline = baseline

    def reference(self, x: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """The reference inputs ``x'`` in model space, one per row of ``x``."""
        if self.given is not None:  # "zero", a tensor or an image
            base = self.given.model_space(self.model).astype(x.dtype)
            return np.repeat(base, len(x), axis=0)
        return B.pixel_level(self.model, self.baseline, pixels.shape).astype(x.dtype)

    def attribute(self, x, targets, pixels, scores):
        base = self.reference(x, pixels)
        mult, run_scores = self.grads(x, targets, base)
        scores = run_scores if scores is None else scores
        attr = ((x - base) * mult).astype(np.float32)
        n = np.arange(len(x))
        base_scores = self.model.forward(base, batch_size=self.params["batch_size"])[n, targets]
        extras = _deltas(attr, scores[n, targets], base_scores)
        return attr if self.params["multiply_by_inputs"] else mult, scores, extras


def _deltas(attr, scores, base_scores):
    """Summation-to-delta's remainder per image: ``sum(attr) - (S(x) - S(x'))``."""
    delta = attr.reshape(len(attr), -1).sum(axis=1, dtype=np.float64) - (scores - base_scores)
    return [{"convergence_delta": float(d), "baseline_score": float(b)}
            for d, b in zip(delta, base_scores)]


@register
class DeepLiftShap(DeepLift):
    """DeepLIFT SHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874, sec. 4.2; Captum's
    DeepLiftShap): DeepLIFT's attributions (rescale rule, see :class:`DeepLift`) averaged over a
    set of baselines, ``mean_k (x - b_k) * m(x, b_k)``, over every baseline of the set as Captum's
    DeepLiftShap. The set is Gradient SHAP's: one baseline for ``"zero"``, ``"black"``, a grey
    level, an array or an image file, ``samples`` images of uniform random pixels for
    ``"uniform"`` (the same images as :class:`~.gradient_shap.GradientShap` draws with the same
    ``seed`` and ``samples``), or the K baselines given as a (K, ...) array or a list (see
    :mod:`onnxviz.explainers.baselines`). ``extras``: ``convergence_delta`` (``sum(attr) - (S(x) -
    mean_k S(b_k))``) and ``baseline_score`` (``mean_k S(b_k)``).

    Args:
        model: an :class:`onnxviz.Model`.
        baseline: ``"uniform"``, ``"zero"``, ``"black"``, a grey level 0-255, an array or an
            image file, or a set: a (K, ...) array of model-space tensors (Captum's
            ``baselines``), K pixel images, or a list of images, files or tensors.
        samples: how many uniform random baselines.
        seed: random seed of the uniform baselines.
        rule: the nonlinearities' rule, as for :class:`DeepLift`.
        multiply_by_inputs: ``False``: the mean multipliers ``mean_k m(x, b_k)``.
        reduce: channel reduction for the heatmap (see :class:`~.saliency.Saliency`).
        batch_size: (image, baseline) pairs per run of the backward graph.
    """

    name = "deeplift_shap"
    summary = "DeepLIFT SHAP: DeepLIFT averaged over a set of (random) baselines"

    words: ClassVar[tuple] = ("uniform", "zero", "black")
    many: ClassVar[bool] = True
    ranges: ClassVar[dict] = {"baseline": BASELINE_SET, "rule": Words(tuple(DEEPLIFT_RULES))}

    def __init__(self, model, *, baseline: str | float | np.ndarray | list = "uniform",
                 samples: int = 5, seed: int = 0, rule: str = "rescale",
                 multiply_by_inputs: bool = True, reduce: str = "abs", batch_size: int = 16):
        ModifiedGradientExplainer.__init__(
            self, model, baseline=baseline, samples=samples, seed=seed, rule=rule,
            multiply_by_inputs=multiply_by_inputs, reduce=reduce, batch_size=batch_size)
        self._check_baseline()
        G.check_positive("samples", samples)
        check_seed(seed)

    def reference(self, x: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """The baselines, (M, ...) in model space."""
        if self.given is not None:
            return self.given.model_space(self.model).astype(x.dtype)
        if self.baseline != "uniform":
            return super().reference(x[:1], pixels[:1])
        return B.uniform(self.model, self.params["seed"], self.params["samples"],
                         pixels.shape[1:]).astype(x.dtype)

    def attribute(self, x, targets, pixels, scores):
        base, bs = self.reference(x, pixels), self.params["batch_size"]
        m = len(base)
        total = np.zeros(x.shape, np.float64)
        mult = np.zeros(x.shape, np.float64)
        for part in G.chunks(len(x) * m, bs):
            img, k = np.divmod(np.arange(len(x) * m)[part], m)
            g, _ = self.grads(x[img], targets[img], base[k])
            np.add.at(mult, img, g)
            np.add.at(total, img, (x[img] - base[k]) * g)
        if scores is None:
            scores = self.model.forward(x, batch_size=bs)
        n = np.arange(len(x))
        base_scores = self.model.forward(base, batch_size=bs)[:, targets].mean(axis=0)
        attr = (total / m).astype(np.float32)
        extras = _deltas(attr, scores[n, targets], base_scores)
        return attr if self.params["multiply_by_inputs"] else (mult / m).astype(np.float32), \
            scores, extras

