"""Class activation maps: CAM, Grad-CAM and its variants, Score-CAM (registered from scorecam.py).

Every method here runs one pipeline (:class:`CAMExplainer`): the layer's activations ``A`` (and,
when the method needs them, the gradients ``G = d score[target] / d A``) are computed for a batch in
one run of the gradient graph; the variant turns them into channel weights ``w``; the map is
``ReLU(sum_k w_k * A_k)`` at the layer's resolution (``Explanation.raw``), upsampled bilinearly to
the model's input size (``Explanation.heatmap``). Maps are not normalised: they keep the units of
``w * A`` (Captum and MATLAB do the same; :mod:`onnxviz.viz` scales for display), so maps of different
targets or images can be compared. A variant overrides :meth:`CAMExplainer.channel_weights` only.

pytorch-grad-cam's options are options of the pipeline (:mod:`.cam_options`): several layers and
``aug_smooth`` average maps scaled to [0, 1] as that library does; ``eigen_smooth`` takes the first
principal component of ``w_k A_k`` instead of the sum; ``relu=False`` drops the final ReLU.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np

from ..detection.layouts import BOX_OUTPUTS
from ..errors import OptionError
from . import _gradient as G
from ..model.layouts import graph_index
from ..model.tokens import layer_view, resolve_map_layer
from .base import Explainer, Explanation, Timer
from .cam_options import (AUGMENTATIONS, LayerNames, augment, check_flags, first_component,
                          layer_names, peer_scaled, weighted)
from .ranges import Range, Words
from .registry import register

EPS = 1e-7


class CAMExplainer(Explainer):
    """The CAM pipeline; subclasses supply :meth:`channel_weights`.

    Args:
        model: an :class:`onnxviz.Model`.
        layer: a layer name (see ``model.layers()``): a feature map, a vision transformer's
            token sequence ``[N, T, C]`` (seen as ``[N, C, h, w]`` on its patch grid, the class and
            other prefix tokens dropped; :mod:`.tokens`), or the model's input. ``None`` picks the
            last map before the score, for a ViT the input of its last attention
            (``blocks[-1].norm1``). A list of names averages their maps, each min-max scaled
            first (:mod:`.cam_options`); one gradient run serves all of them.
        batch_size: images per run of the gradient graph.
        relu: clip the map at 0 (the papers' final ReLU); False keeps the negative evidence.
        eigen_smooth: the map is the first principal component of the weighted channels
            ``w_k A_k`` instead of their sum (pytorch-grad-cam's ``eigen_smooth``).
        aug_smooth: average the maps of six copies of the input: flipped left-right or not, times
            0.9, 1 or 1.1 (pytorch-grad-cam's ``aug_smooth``), each min-max scaled first.
    """

    family: ClassVar[str] = "cam"
    needs_gradients: ClassVar[bool] = True
    #: The map is the first principal component of ``w_k A_k`` whatever ``eigen_smooth`` says.
    principal_component: ClassVar[bool] = False
    ranges: ClassVar[dict] = {"layer": LayerNames()}

    def __init__(self, model, *, layer: str | list[str] | None = None, batch_size: int = 16,
                 relu: bool = True, eigen_smooth: bool = False, aug_smooth: bool = False):
        self.setup(model, layer=layer, batch_size=batch_size, relu=relu,
                   eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)

    def setup(self, model, *, layer, batch_size, relu, eigen_smooth, aug_smooth, **own):
        """The checks and layer resolution of every CAM's ``__init__``; ``own`` are a variant's
        own options. ``params`` holds ``layer``, ``batch_size`` and the options given other
        than their defaults."""
        G.check_positive("batch_size", batch_size)
        flags = {"relu": relu, "eigen_smooth": eigen_smooth, "aug_smooth": aug_smooth}
        check_flags(**flags)
        defaults = {k: p.default for k, p in type(self).options().items()}
        changed = {k: v for k, v in {**flags, **own}.items() if k not in defaults or v != defaults[k]}
        super().__init__(model, layer=layer, batch_size=batch_size, **changed)
        self.opts = {**flags, **own}
        self.layers = [resolve_map_layer(model, n) for n in layer_names(layer)]
        self.layer = self.layers[0]
        self.view = layer_view(model, self.layer)
        if aug_smooth and getattr(model.input, "flat_size", None):
            raise OptionError("aug_smooth flips the image, which a flattened input cannot show")

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

    def layer_map(self, activations, gradients, *, inputs, targets, channels=False):
        """(N, h, w) maps at the layer's resolution before the ReLU: ``sum_k w_k A_k`` with the
        weights of :meth:`channel_weights` (same arguments), or with ``eigen_smooth`` (or
        :attr:`principal_component`) the first principal component of ``w_k A_k``. Returns
        ``(maps, w_k A_k)``, the second (N, C, h, w) when ``channels``, else None."""
        w = self.channel_weights(activations, gradients, inputs=inputs, targets=targets)
        eigen = self.principal_component or self.opts["eigen_smooth"]
        if not (eigen or channels) and w.ndim == 2:
            return np.einsum("nc,nchw->nhw", w.astype(np.float32),
                             activations.astype(np.float32)), None
        wa = weighted(w, activations)
        return (first_component(wa) if eigen else wa.sum(axis=1)), (wa if channels else None)

    def layer_maps(self, x, targets, timer, channels=False):
        """One run of the model (or its gradient graph) on ``x``: ``(maps, scores, w_k A_k)``,
        ``maps`` one (N, h, w) per layer (ReLU applied unless ``relu=False``)."""
        m, bs = self.model, self.params["batch_size"]
        tensors = list(dict.fromkeys(ly.tensor for ly in self.layers))
        shown = [t for t in tensors if t != m.input.name]  # the input is x itself
        with timer("gradients" if self.needs_gradients else "forward"):
            if self.needs_gradients:
                grads, exposed, scores = G.gradients(m, x, targets, tensors, shown, bs)
            else:
                exposed, grads = m.run(x, [m.score_output, *shown], batch_size=bs), None
                scores = exposed[m.score_output].reshape(len(x), -1)
        exposed = {**exposed, m.input.name: x}
        maps, chans = [], None
        with timer("weights"):
            for part in self._parts():
                view, t = part.view, part.layer.tensor
                g = None if grads is None else view.to_nchw(grads[t])
                cam, chans = part.layer_map(view.to_nchw(exposed[t]), g, inputs=x,
                                            targets=targets, channels=channels)
                maps.append(np.maximum(cam, 0) if self.opts["relu"] else cam)
        return maps, scores, chans

    def _parts(self) -> list:
        """One explainer per layer (shallow copies: the same model and options)."""
        if len(self.layers) == 1:
            return [self]
        parts = []
        for ly in self.layers:
            part = copy.copy(self)
            part.layer, part.view, part.layers = ly, layer_view(self.model, ly), [ly]
            parts.append(part)
        return parts

    def explain(self, images, target=None) -> list[Explanation]:
        m, bs = self.model, self.params["batch_size"]
        timer = Timer()
        pixels, x, targets, scores = G.prepare(m, images, target, bs, timer)
        combined = self.opts["aug_smooth"] or len(self.layers) > 1
        augs = AUGMENTATIONS if self.opts["aug_smooth"] else ((False, 1.0),)
        heat = None
        for flip, factor in augs:
            plain = not flip and factor == 1
            xa = x if plain else augment(x, m.input.layout, flip, factor)
            maps, run_scores, _ = self.layer_maps(xa, targets, timer)
            if plain:
                raw, scores = maps[0], run_scores if scores is None else scores
            if combined:
                with timer("map"):
                    one = peer_scaled(maps, m.input.size)
                    one = one[:, :, ::-1] if flip else one
                    heat = one if heat is None else heat + one
        with timer("map"):
            if combined:
                heat = raw = (heat / len(augs)).astype(np.float32)
            else:
                heat = G.upsample(raw, m.input.size)
            heat = G.image_shaped(m, heat[..., None])[..., 0]
        times = timer.result(share=len(x))
        layers = ",".join(ly.name for ly in self.layers)
        return [
            Explanation(
                heatmap=heat[i], raw=raw[i], target=int(t), label=m.label_of(int(t)),
                score=float(scores[i, t]), method=self.name, params=dict(self.params),
                timings=times, image=G.image_shaped(m, pixels)[i], extras={"layer": layers},
            )
            for i, t in enumerate(targets)
        ]

    def channel_maps(self, images, target=None) -> list[np.ndarray]:
        """The weighted channels ``w_k A_k`` of one layer, (C, h, w) per image: what
        :meth:`explain`'s map sums before the ReLU (or projects, with ``eigen_smooth`` and the
        Eigen-CAMs), computed on request only (C maps per image).

        Args:
            images: as for :meth:`explain` (a list; the unaugmented images).
            target: as for :meth:`explain`.
        """
        if len(self.layers) > 1:
            raise OptionError("channel_maps needs one layer; build the explainer with one name")
        m, bs = self.model, self.params["batch_size"]
        timer = Timer()
        _, x, targets, _ = G.prepare(m, images, target, bs, timer)
        return list(self.layer_maps(x, targets, timer, channels=True)[2])


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

    @classmethod
    def applies_to(cls, model):
        task = getattr(model, "task", "classify")
        if task != "classify":
            return (f"cam reads the dense layer after a classifier's global average pooling; a "
                    f"{task} model's head has none: use gradcam")
        return None

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

    Args:
        epsilon: added to the alphas' denominator. 0 (the paper) gives 0 where it is 0;
            pytorch-grad-cam adds ``1e-6``, which also shrinks the alphas of small gradients
            (``g^2 / 1e-6`` instead of ``1/2`` when ``g`` is near 0): ``epsilon=1e-6``
            reproduces it. (The same word as LRP's stabiliser: one CLI flag, ``--epsilon``.)
        Other options: as :class:`CAMExplainer`.
    """

    name = "gradcam++"
    summary = "Grad-CAM++: closed-form pixel-wise weighting of positive gradients"
    ranges: ClassVar[dict] = {**CAMExplainer.ranges, "epsilon": Range(float, 0, 1)}

    def __init__(self, model, *, layer: str | list[str] | None = None, batch_size: int = 16,
                 epsilon: float = 0.0, relu: bool = True, eigen_smooth: bool = False,
                 aug_smooth: bool = False):
        self.setup(model, layer=layer, batch_size=batch_size, relu=relu, epsilon=epsilon,
                   eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)

    def channel_weights(self, activations, gradients, *, inputs, targets):
        g2 = gradients.astype(np.float64) ** 2
        g3 = g2 * gradients
        denom = 2 * g2 + activations.sum(axis=(2, 3), keepdims=True) * g3 + self.opts["epsilon"]
        alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=(denom != 0) & (gradients != 0))
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
class ODAM(HiResCAM):
    """ODAM (Zhao & Chan, "ODAM: Gradient-based instance-specific visual explanations for object
    detection", ICLR 2023, https://arxiv.org/abs/2304.06354, eq. 3): ``ReLU(sum_k g_k * A_k)``,
    the gradient of one box's score times the activations, element-wise, at the feature level
    the box's anchor comes from. HiResCAM's formula with a box as the target; detectors only
    (through :mod:`onnxviz.explainers.boxes`, which picks each box's level).

    Args:
        box_output: what of each box is explained: ``"score"`` (its class score), or one of its
            coordinates in input pixels, ``cx``, ``cy``, ``w``, ``h``, ``x0``, ``y0``, ``x1``,
            ``y1`` (ODAM explains a box's regression outputs as it explains its score);
            :func:`onnxviz.explainers.boxes.explain_boxes` builds the view that differentiates it.
        Other options: as :class:`CAMExplainer`.
    """

    name = "odam"
    summary = "ODAM: one box's score (or coordinate) gradient times the activations of its " \
              "feature level (Zhao & Chan 2023; detectors)"
    boxes_only = True
    ranges: ClassVar[dict] = {**CAMExplainer.ranges, "box_output": Words(BOX_OUTPUTS)}

    def __init__(self, model, *, layer: str | list[str] | None = None, batch_size: int = 16,
                 relu: bool = True, eigen_smooth: bool = False, aug_smooth: bool = False,
                 box_output: str = "score"):
        self.setup(model, layer=layer, batch_size=batch_size, relu=relu,
                   eigen_smooth=eigen_smooth, aug_smooth=aug_smooth, box_output=box_output)

    @classmethod
    def applies_to(cls, model):
        task = getattr(model, "task", "classify")
        if task != "detect" and not hasattr(model, "anchors"):
            return f"odam explains the boxes of object detectors; this model is a {task} model"
        return None


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

