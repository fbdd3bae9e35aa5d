"""Layer-wise relevance propagation over the LRP rule sets of :mod:`onnxviz.autodiff.lrp`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..autodiff import lrp as rules
from ..errors import OptionError
from . import _gradient as G
from .modified import ModifiedGradientExplainer, path_nodes
from .ranges import Range, Words
from .registry import register


def first_layer(model):
    """The first weighted layer (Conv, Gemm, MatMul with constant weights) between the model
    input and the score, and the tensor it reads."""
    nodes, fed = path_nodes(model)
    for n in nodes:
        if n.op_type in rules.WEIGHTED and len(n.input) > 1 and n.input[0] in fed and n.input[1] not in fed:
            return n, n.input[0]
    raise OptionError("lrp: the model has no weighted layer (Conv, Gemm, MatMul) between the "
                      "input and the score for first_rule")


def input_bounds(model, tensor: str) -> tuple[np.ndarray, np.ndarray]:
    """The bounds of ``tensor`` over images: elementwise min and max of its values on the all-0
    and all-255 pixel images, preprocessed as the model's images are (exact when the ops up to
    ``tensor`` are elementwise monotone or move values, as normalisation and layout changes do).

    Returns:
        ``(low, high)``, float32, shaped like ``tensor`` with a batch axis of 1.
    """
    h, w = model.input.size
    x = model.normalize(np.stack([np.zeros((h, w, 3), np.float32),
                                  np.full((h, w, 3), 255.0, np.float32)]))
    v = x if tensor == model.input.name else model.run(x, [tensor])[tensor]
    v = np.asarray(v, np.float32)
    return np.minimum(v[:1], v[1:]), np.maximum(v[:1], v[1:])


@register
class LRP(ModifiedGradientExplainer):
    """Layer-wise relevance propagation (Bach et al. 2015,
    https://doi.org/10.1371/journal.pone.0130140; Montavon et al. 2019, eq. 4-7, sec. 10.2).

    The score ``S`` is the relevance of the output; each Conv, Gemm, MatMul, pooling and
    BatchNormalization node with output ``z = f(a)`` passes back ``a * J^T (R / (z + eps sign z))``
    with the rule's weights; activations (Relu, Tanh) pass relevance on unchanged and reshapes keep
    their gradients. ``rule`` sets the Conv layers' rule and ``dense_rule`` that of the dense layers
    (Gemm, MatMul); pooling and BatchNormalization take the epsilon rule. Rules
    (:mod:`onnxviz.autodiff.lrp`): ``"epsilon"`` (the layer as it is, ``eps = epsilon``),
    ``"gamma"`` (``W + gamma W+``), ``"zplus"`` (``W+``; biases kept, as Captum's GammaRule and
    Alpha1_Beta0_Rule keep them), ``"alphabeta"`` (positive and negative contributions apart,
    ``(1 + beta) R+ - beta R-``, biases split by sign). ``first_rule`` replaces the rule of the
    first weighted layer: one of those, or ``"zb"``, the bounded-input rule, with bounds from the
    model's preprocessing of pixel values 0 and 255. Rules other than epsilon add ``1e-9 sign z``.
    Without biases, the epsilon rule's input relevance sums to ``S``;
    ``extras["conservation_gap"]`` is ``sum(R) - S``.

    Args:
        model: an :class:`onnxviz.Model`.
        rule: ``"epsilon"``, ``"gamma"``, ``"zplus"`` or ``"alphabeta"`` for the Conv layers.
        dense_rule: the same choices for the Gemm and MatMul layers; ``None``: ``rule``.
        first_rule: the first weighted layer's rule (the same choices or ``"zb"``); ``None``:
            the rule of its type.
        epsilon: the epsilon rule's stabiliser (Captum's EpsilonRule default 1e-9).
        gamma: the gamma rule's weight of positive weights (Captum's GammaRule default 0.25).
        beta: the alpha-beta rule's weight of negative contributions (``alpha = 1 + beta``).
        reduce: channel reduction for the heatmap (see :class:`~.saliency.Saliency`).
        batch_size: images per run of the backward graph.
    """

    name = "lrp"
    summary = "LRP: the score's relevance redistributed layer by layer to the pixels"
    ranges: ClassVar[dict] = {"epsilon": Range(float, 0, 1e6, open_low=True),
                              "gamma": Range(float, 0, 1e6), "beta": Range(float, 0, 1e6),
                              "rule": Words(rules.LAYER_RULES),
                              "dense_rule": Words(rules.LAYER_RULES, none=True),
                              "first_rule": Words(rules.FIRST_RULES, none=True)}

    @classmethod
    def applies_to(cls, model) -> str | None:
        reason = super().applies_to(model)
        if reason:
            return reason
        nodes, fed = path_nodes(model)
        both = [n.name or n.output[0] for n in nodes if n.op_type in ("MatMul", "Gemm")
                and len(n.input) > 1 and n.input[0] in fed and n.input[1] in fed]
        if both:
            return (f"lrp has no rule for a product of two activations (node {both[0]!r}, as in "
                    "attention): its rules share relevance between an input and constant weights")
        return None

    def __init__(self, model, *, rule: str = "epsilon", dense_rule: str | None = None,
                 first_rule: str | None = None, epsilon: float = rules.LRP_EPSILON,
                 gamma: float = rules.LRP_GAMMA, beta: float = 1.0, reduce: str = "abs",
                 batch_size: int = 16):
        super().__init__(model, rule=rule, dense_rule=dense_rule, first_rule=first_rule,
                         epsilon=epsilon, gamma=gamma, beta=beta, reduce=reduce,
                         batch_size=batch_size)
        spec = {"conv": rule, "dense": dense_rule or rule, "epsilon": float(epsilon),
                "gamma": float(gamma), "beta": float(beta)}
        if first_rule is not None:
            _, tensor = first_layer(model)
            spec.update({"first": first_rule, "first_input": tensor})
            if first_rule == "zb":
                low, high = input_bounds(model, tensor)
                spec.update({"low": low.tobytes(), "high": high.tobytes(),
                             "bounds_shape": low.shape})
        self.rule_set = rules.LRPRules(**spec)

    def attribute(self, x, targets, pixels, scores):
        per_unit, run_scores = self.grads(x, targets)  # relevance per unit of the score
        n = np.arange(len(x))
        score = run_scores[n, targets]
        attr = (per_unit * score.reshape(-1, *([1] * (x.ndim - 1)))).astype(np.float32)
        gap = attr.reshape(len(x), -1).sum(axis=1, dtype=np.float64) - score
        return attr, run_scores if scores is None else scores, [
            {"conservation_gap": float(g)} for g in gap]
