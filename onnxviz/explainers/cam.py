"""Class activation maps: CAM, Grad-CAM and its variants, Score-CAM (registered from scorecam.py).

Every method here runs one pipeline (:class:`CAMExplainer`): the layer's activations ``A`` (and,
when the method needs them, the gradients ``G = d score[target] / d A``) are computed for a batch in
one run of the gradient graph; the variant turns them into channel weights ``w``; the map is
``ReLU(sum_k w_k * A_k)`` at the layer's resolution (``Explanation.raw``), upsampled bilinearly to
the model's input size (``Explanation.heatmap``). Maps are not normalised: they keep the units of
``w * A`` (Captum and MATLAB do the same; :mod:`onnxviz.viz` scales for display), so maps of different
targets or images can be compared. A variant overrides :meth:`CAMExplainer.channel_weights` only.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import OptionError
from . import _gradient as G
from ._layers import graph_index
from .tokens import layer_view, resolve_map_layer
from .base import Explainer, Explanation, Timer
from .registry import register

EPS = 1e-7


class CAMExplainer(Explainer):
    """The CAM pipeline; subclasses supply :meth:`channel_weights`.

    Args:
        model: an :class:`onnxviz.Model`.
        layer: a layer name (see ``model.layers()``): a feature map, or a vision transformer's
            token sequence ``[N, T, C]`` (seen as ``[N, C, h, w]`` on its patch grid, the class and
            other prefix tokens dropped; :mod:`.tokens`). ``None`` picks the last map before the
            score, for a ViT the input of its last attention (``blocks[-1].norm1``).
        batch_size: images per run of the gradient graph.
    """

    family: ClassVar[str] = "cam"
    needs_gradients: ClassVar[bool] = True

    def __init__(self, model, *, layer: str | None = None, batch_size: int = 16):
        G.check_positive("batch_size", batch_size)
        super().__init__(model, layer=layer, batch_size=batch_size)
        self.layer = resolve_map_layer(model, layer)
        self.view = layer_view(model, self.layer)

    def channel_weights(self, activations, gradients, *, inputs, targets):
        """Weights of the activation channels.

        Args:
            activations: (N, C, h, w) the layer's activations, channel-first.
            gradients: (N, C, h, w) d score[target] / d activations, or ``None`` when the class
                sets ``needs_gradients = False``.
            inputs: (N, ...) the model input tensor of the batch.
            targets: (N,) the class explained per image.

        Returns:
            (N, C) one weight per channel, or (N, C, h, w) one weight per activation.
        """
        raise NotImplementedError

    def layer_map(self, activations, gradients, *, inputs, targets):
        """(N, h, w) maps at the layer's resolution: ``ReLU(sum_k w_k A_k)`` with the weights of
        :meth:`channel_weights` (same arguments). A method whose map is not a weighted sum of the
        channels (Eigen-CAM's principal component) overrides this instead."""
        return combine(self.channel_weights(activations, gradients, inputs=inputs, targets=targets),
                       activations)

    def explain(self, images, target=None) -> list[Explanation]:
        m, bs = self.model, self.params["batch_size"]
        timer = Timer()
        pixels, x, targets, scores = G.prepare(m, images, target, bs, timer)
        tensor = self.layer.tensor
        with timer("gradients" if self.needs_gradients else "forward"):
            if self.needs_gradients:
                grads, exposed, run_scores = G.gradients(m, x, targets, [tensor], [tensor], bs)
                grads = self.view.to_nchw(grads[tensor])
            else:
                run_scores = m.run(x, [m.score_output, tensor], batch_size=bs)
                exposed, grads = run_scores, None
                run_scores = run_scores[m.score_output].reshape(len(x), -1)
            acts = self.view.to_nchw(exposed[tensor])
        scores = run_scores if scores is None else scores
        with timer("weights"):
            raw = self.layer_map(acts, grads, inputs=x, targets=targets)
        with timer("map"):
            heat = G.image_shaped(m, G.upsample(raw, m.input.size)[..., None])[..., 0]
        times = timer.result(share=len(x))
        return [
            Explanation(
                heatmap=heat[i], raw=raw[i], target=int(t), label=m.label_of(int(t)),
                score=float(scores[i, t]), method=self.name, params=dict(self.params),
                timings=times, image=G.image_shaped(m, pixels)[i], extras={"layer": self.layer.name},
            )
            for i, t in enumerate(targets)
        ]


def combine(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """``ReLU(sum_k w_k A_k)`` for (N, C) or (N, C, h, w) weights and (N, C, h, w) activations."""
    if weights.ndim == 2:
        cam = np.einsum("nc,nchw->nhw", weights.astype(np.float32), activations.astype(np.float32))
    else:
        cam = (weights * activations).sum(axis=1)
    return np.maximum(cam, 0).astype(np.float32)


@register
class CAM(CAMExplainer):
    """CAM (Zhou et al. 2016, https://arxiv.org/abs/1512.04150, eq. 2).

    Needs a head of global average pooling followed by one dense layer (Gemm, MatMul(+Add) or a
    1x1 Conv); ``w_k`` is that layer's weight from channel ``k`` to the target class, read from the
    model's initializers. The layer must be the pooling's input, which the default layer is for
    such heads. For them CAM equals Grad-CAM times the number of positions ``h * w``.
    """

    name = "cam"
    summary = "CAM: activations weighted by the dense layer after global average pooling"
    needs_gradients = False

    def channel_weights(self, activations, gradients, *, inputs, targets):
        from ._head import gap_dense_head

        head = gap_dense_head(self.model, graph_index(self.model))
        if head.tensor != self.layer.tensor:
            names = [ly.name for ly in self.model.layers() if ly.tensor == head.tensor]
            shape = tuple(self.model.shape_of(head.tensor))
            if self.params.get("layer") is None and len(shape) == 4 and shape[2:] == (1, 1):
                raise OptionError(
                    f"cam maps the input of the global-average-pooling head, layer "
                    f"{(names or [head.tensor])[0]!r}, which is 1x1 at this input size: no map to "
                    "draw; use gradcam on an earlier layer, or a larger input")
            raise OptionError(
                f"cam weights the input of the global average pooling, layer "
                f"{(names or [head.tensor])[0]!r}, not {self.layer.name!r}; drop the layer option "
                "or use gradcam for other layers"
            )
        return head.weights[targets]


@register
class GradCAM(CAMExplainer):
    """Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391, eq. 1-2).

    ``w_k = mean_ij dS/dA_kij``: the gradient averaged over the map.
    """

    name = "gradcam"
    summary = "Grad-CAM: layer activations weighted by their spatially averaged gradients"

    def channel_weights(self, activations, gradients, *, inputs, targets):
        return gradients.mean(axis=(2, 3))


@register
class GradCAMPlusPlus(CAMExplainer):
    """Grad-CAM++ (Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063).

    With ``g = dS/dA`` (S the pre-softmax score, taken through ``exp`` as in the paper so that the
    higher derivatives are powers of ``g``), the closed-form alphas of eq. 19 are
    ``a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3)`` (0 where the denominator is 0) and the weights
    of eq. 9 are ``w_k = sum_ij a_kij ReLU(g_kij)``. The common factor ``exp(S)`` is dropped: it
    scales every channel alike.
    """

    name = "gradcam++"
    summary = "Grad-CAM++: closed-form pixel-wise weighting of positive gradients"

    def channel_weights(self, activations, gradients, *, inputs, targets):
        g2 = gradients.astype(np.float64) ** 2
        g3 = g2 * gradients
        denom = 2 * g2 + activations.sum(axis=(2, 3), keepdims=True) * g3
        alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
        return (alpha * np.maximum(gradients, 0)).sum(axis=(2, 3)).astype(np.float32)


@register
class HiResCAM(CAMExplainer):
    """HiResCAM (Draelos & Carin 2020, https://arxiv.org/abs/2011.08891, eq. 4).

    Each activation is weighted by its own gradient (no spatial averaging), so the map's sum is
    the score's first-order change when the layer is removed.
    """

    name = "hirescam"
    summary = "HiResCAM: activations times their gradients, element-wise"

    def channel_weights(self, activations, gradients, *, inputs, targets):
        return gradients


@register
class XGradCAM(CAMExplainer):
    """XGrad-CAM (Fu et al. 2020, https://arxiv.org/abs/2008.02312, eq. 9).

    ``w_k = sum_ij (A_kij / sum_ab A_kab) g_kij``: gradients averaged with activation weights.
    """

    name = "xgradcam"
    summary = "XGrad-CAM: gradients averaged with the activations as weights"

    def channel_weights(self, activations, gradients, *, inputs, targets):
        total = activations.sum(axis=(2, 3))
        num = (activations * gradients).sum(axis=(2, 3))
        return num / (total + EPS)


@register
class LayerCAM(CAMExplainer):
    """LayerCAM (Jiang et al. 2021, IEEE TIP 30, eq. 5): ``w_kij = ReLU(g_kij)`` per activation."""

    name = "layercam"
    summary = "LayerCAM: activations weighted by their positive gradients, element-wise"

    def channel_weights(self, activations, gradients, *, inputs, targets):
        return np.maximum(gradients, 0)


from . import scorecam  # noqa: E402,F401  (registers "scorecam" with the CAM family)
