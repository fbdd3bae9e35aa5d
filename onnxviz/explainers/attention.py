"""Attention methods for vision transformers: attention rollout and gradient-weighted attention.

Both read the attention maps ``A`` of every block, the outputs of the ``Softmax`` nodes shaped
``[N, heads, T, T]`` (:func:`onnxviz.model.tokens.attention_softmaxes`), found in the ONNX
graph whatever exported it; fused attention (``scaled_dot_product_attention``) is decomposed into
``MatMul``/``Softmax`` by the PyTorch exporters, so it is found too. The token sequence's patch
grid and its prefix (class, distillation, register tokens) come from :mod:`.tokens`. The relevance
of the patch tokens is the class token's row (the first token) of a ``T x T`` relevance matrix,
without the prefix columns, reshaped to the grid (``Explanation.raw``, unnormalised) and upsampled
bilinearly to the input size (``Explanation.heatmap``). A model without a prefix token (pooled
tokens) uses the mean of all rows instead.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import OptionError
from . import _gradient as G
from ._checks import check_fraction
from .base import Explainer, Explanation, Timer
from .registry import register
from ..model.tokens import attention_softmaxes, batch_like, sequence_grid



def attention_layers(model) -> tuple[list[str], tuple[int, int], int]:
    """The attention maps of ``model`` with the patch grid and prefix of their token sequence.

    Returns:
        ``(softmax outputs in graph order, (h, w), prefix)``.

    Raises:
        OptionError: no attention maps, maps of different sequences (windowed attention such as
            Swin's), or a sequence that does not lie on a patch grid.
    """
    soft = attention_softmaxes(model)
    if not soft:
        raise OptionError(
            "this model has no attention: no Softmax node outputs a [N, heads, T, T] map; attention "
            "methods need a vision transformer (ViT, DeiT); use gradcam or a saliency method")
    shapes = [model.shape_of(s) for s in soft]
    tokens = {s[2] for s in shapes}
    found = sequence_grid(model, shapes[0][2]) if len(tokens) == 1 else None
    if found is None or not all(batch_like(model, s[0]) for s in shapes):
        seqs = ", ".join(f"{s[0]}x{s[1]}x{s[2]}x{s[3]}" for s in dict.fromkeys(map(tuple, shapes)))
        raise OptionError(
            f"attention rollout and gradient-weighted attention need every block to attend over "
            f"the whole token sequence on one patch grid; this model's attention maps are {seqs} "
            f"(windowed or hierarchical attention such as Swin's); use gradcam on its feature maps")
    return soft, found[0], found[1]


class AttentionExplainer(Explainer):
    """The attention pipeline; subclasses supply :meth:`relevance`.

    Args:
        model: an :class:`onnxviz.Model` of a vision transformer.
        batch_size: images per run.
    """

    family: ClassVar[str] = "attention"
    needs_gradients: ClassVar[bool] = False

    @classmethod
    def applies_to(cls, model) -> str | None:
        try:
            attention_layers(model)
        except OptionError as e:
            return str(e)
        return None

    def __init__(self, model, *, batch_size: int = 16, **params):
        G.check_positive("batch_size", batch_size)
        super().__init__(model, batch_size=batch_size, **params)
        self.maps, self.grid, self.prefix = attention_layers(model)

    def relevance(self, attentions, gradients) -> np.ndarray:
        """The (N, T, T) relevance of tokens to tokens.

        Args:
            attentions: list over blocks of (N, heads, T, T) attention maps, in graph order.
            gradients: list of d score[target] / d attention, like ``attentions``, or ``None``
                when the class sets ``needs_gradients = False``.
        """
        raise NotImplementedError

    def explain(self, images, target=None) -> list[Explanation]:
        m, bs = self.model, self.params["batch_size"]
        timer = Timer()
        pixels, x, targets, scores = G.prepare(m, images, target, bs, timer)
        with timer("gradients" if self.needs_gradients else "forward"):
            if self.needs_gradients:
                grads, exposed, run_scores = G.gradients(m, x, targets, self.maps, self.maps, bs)
                grads = [grads[t] for t in self.maps]
            else:
                exposed = m.run(x, [m.score_output, *self.maps], batch_size=bs)
                run_scores, grads = exposed[m.score_output].reshape(len(x), -1), None
            attns = [exposed[t] for t in self.maps]
        scores = run_scores if scores is None else scores
        with timer("relevance"):
            rel = self.relevance(attns, grads)
            rows = rel[:, 0] if self.prefix else rel.mean(axis=1)
            raw = rows[:, self.prefix:].reshape(len(x), *self.grid).astype(np.float32)
        with timer("map"):
            heat = G.image_shaped(m, G.upsample(raw, m.input.size)[..., None])[..., 0]
        times = timer.result(share=len(x))
        return [
            Explanation(
                heatmap=heat[i], raw=raw[i], target=int(t), label=m.label_of(int(t)),
                score=float(scores[i, t]), method=self.name, params=dict(self.params),
                timings=times, image=G.image_shaped(m, pixels)[i],
                extras={"blocks": len(self.maps), "grid": list(self.grid), "prefix": self.prefix},
            )
            for i, t in enumerate(targets)
        ]


def fuse_heads(attention: np.ndarray, head_fusion: str) -> np.ndarray:
    """(N, heads, T, T) -> (N, T, T) by the mean, max or min over heads."""
    return getattr(attention, head_fusion)(axis=1)


def discard_lowest(attention: np.ndarray, ratio: float) -> np.ndarray:
    """(N, T, T) with the lowest ``ratio`` of each image's entries set to 0, except entry (0, 0).

    As the common implementation (jacobgil/vit-explain) does: ``int(T * T * ratio)`` entries per
    image, ties broken by position, the class token's attention to itself always kept.
    """
    n, t, _ = attention.shape
    k = int(t * t * ratio)
    if k == 0:
        return attention
    flat = attention.reshape(n, -1).copy()
    lowest = np.argsort(flat, axis=1, kind="stable")[:, :k]
    for i in range(n):
        idx = lowest[i]
        flat[i, idx[idx != 0]] = 0
    return flat.reshape(n, t, t)


@register
class AttentionRollout(AttentionExplainer):
    """Attention rollout (Abnar & Zuidema 2020, https://arxiv.org/abs/2005.00928, sec. 3).

    Per block the heads are fused (``head_fusion``), the lowest ``discard_ratio`` of the fused
    entries are zeroed (the common implementation's noise filter; 0 keeps the paper's method),
    the identity is added for the residual connection and the rows renormalised to sum to 1:
    ``A' = (A + I) / rowsum``; the rollout is the product ``A'_L ... A'_1``. It does not depend on
    the target class.

    Args:
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over the heads.
        discard_ratio: fraction in [0, 1) of the lowest attention entries dropped per block.
    """

    name = "attention_rollout"
    summary = "Attention rollout: attention maps multiplied through the blocks (class-agnostic)"

    def __init__(self, model, *, head_fusion: str = "mean", discard_ratio: float = 0.9,
                 batch_size: int = 16):
        check_fraction("discard_ratio", discard_ratio)
        super().__init__(model, batch_size=batch_size, head_fusion=head_fusion,
                         discard_ratio=discard_ratio)

    def relevance(self, attentions, gradients):
        n, _, t, _ = attentions[0].shape
        eye = np.eye(t)
        result = np.broadcast_to(eye, (n, t, t)).copy()
        for a in attentions:
            fused = discard_lowest(fuse_heads(a.astype(np.float64), self.params["head_fusion"]),
                                   self.params["discard_ratio"])
            fused = fused + eye
            fused /= fused.sum(axis=-1, keepdims=True)
            result = fused @ result
        return result


@register
class AttentionGradient(AttentionExplainer):
    """Gradient-weighted attention (Chefer, Gur & Wolf 2021, "Generic Attention-model
    Explainability", https://arxiv.org/abs/2103.15679, eq. 5-6).

    With ``A_b`` block ``b``'s attention and ``G_b = d score[target] / d A_b``, the relevance starts
    as ``R = I`` and each block, in order, adds ``Abar_b R`` with ``Abar_b = mean_heads(ReLU(G_b * A_b))``.
    The class token's row of ``R`` over the patch tokens is the map (eq. 6 for self-attention).
    """

    name = "attention_gradient"
    summary = "Gradient-weighted attention (Chefer et al. 2021): class-specific relevance through the blocks"
    needs_gradients = True

    def __init__(self, model, *, batch_size: int = 16):
        super().__init__(model, batch_size=batch_size)

    def relevance(self, attentions, gradients):
        n, _, t, _ = attentions[0].shape
        rel = np.broadcast_to(np.eye(t), (n, t, t)).copy()
        for a, g in zip(attentions, gradients):
            cam = np.maximum(g.astype(np.float64) * a, 0).mean(axis=1)
            rel = rel + cam @ rel
        return rel
