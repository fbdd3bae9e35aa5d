"""More class activation maps: Eigen-CAM, Eigen-Grad-CAM, Grad-CAM element-wise, Ablation-CAM,
FullGrad.

They run the CAM pipeline of :class:`~onnxviz.explainers.cam.CAMExplainer` (activations and, when
needed, gradients of one layer per batch; the map at the layer's resolution in ``raw``, upsampled
in ``heatmap``) and are checked against pytorch-grad-cam's ``EigenCAM``, ``EigenGradCAM`` and
``GradCAMElementWise``, ``AblationCAM`` and ``FullGrad`` on the same torch network exported to ONNX.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .. import runtime
from . import _gradient as G
from .base import Explainer, Explanation, Timer
from .cam import CAMExplainer
from .cam_options import first_component  # noqa: F401  (its home before cam_options.py)
from .registry import register


@register
class EigenCAM(CAMExplainer):
    """Eigen-CAM (Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299, eq. 5-6).

    The map is the layer's activations projected on their first principal component
    (:func:`~.cam_options.first_component`; every channel weight is 1), then ReLU. It uses no
    gradient and no target: every class gets the same map.
    """

    name = "eigencam"
    summary = "Eigen-CAM: the first principal component of the layer's activations"
    needs_gradients = False
    principal_component = True

    def channel_weights(self, activations, gradients, *, inputs, targets):
        return np.ones(activations.shape[:2], np.float32)


@register
class EigenGradCAM(CAMExplainer):
    """Eigen-Grad-CAM: Eigen-CAM of the gradient-weighted activations ``dS/dA * A``
    (pytorch-grad-cam's variant of Muhammad & Yeasin 2020), so the map depends on the target."""

    name = "eigengradcam"
    summary = "Eigen-Grad-CAM: first principal component of activations times gradients"

    principal_component = True

    def channel_weights(self, activations, gradients, *, inputs, targets):
        return gradients


@register
class GradCAMElementWise(CAMExplainer):
    """Grad-CAM element-wise (pytorch-grad-cam's ``GradCAMElementWise``): ``sum_k ReLU(g_kij A_kij)``.

    As HiResCAM, each activation is weighted by its own gradient, but the products are clipped at
    0 before the channels are summed, so channels that speak against the class cannot cancel
    those that speak for it. Written as weights: ``w_kij = g_kij`` where ``g_kij A_kij > 0``, else 0.
    """

    name = "gradcam_elementwise"
    summary = "Grad-CAM element-wise: positive parts of activations times gradients, summed"

    def channel_weights(self, activations, gradients, *, inputs, targets):
        return np.where(gradients * activations > 0, gradients, 0).astype(np.float32)


KEEP = "onnxviz_ablation_keep"


def ablation_graph(model, tensor: str, layout: str) -> onnx.ModelProto:
    """The model with ``tensor`` multiplied by an extra input ``KEEP`` before its consumers, and
    the score tensor among its outputs (cached on the model, so that its session is built once).

    ``KEEP`` has the batch size and the channel count on the layer's channel axis (1 elsewhere):
    a row of ones runs the model unchanged, a 0 at channel ``k`` ablates that channel.
    """
    cache = model.__dict__.setdefault("_onnxviz_ablation", {})
    if tensor in cache:
        return cache[tensor]
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    g = proto.graph
    ablated = f"{tensor}__onnxviz_ablated"
    for node in g.node:
        for j, name in enumerate(node.input):
            if name == tensor:
                node.input[j] = ablated
    elem = next((vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.output, *g.input]
                 if vi.name == tensor), onnx.TensorProto.FLOAT) or onnx.TensorProto.FLOAT
    channel = layout.index("C")
    dims = ["N" if k == 0 else ("C" if k == channel else 1) for k in range(len(layout))]
    g.input.append(helper.make_tensor_value_info(KEEP, elem, dims))
    g.node.append(helper.make_node("Mul", [tensor, KEEP], [ablated], name=f"{ablated}_mul"))
    if model.score_output not in {o.name for o in g.output}:  # scores before a Softmax
        g.output.append(onnx.ValueInfoProto(name=model.score_output))
    cache[tensor] = proto
    return proto


@register
class AblationCAM(CAMExplainer):
    """Ablation-CAM (Desai & Ramaswamy 2020, WACV, eq. 2-3).

    Channel ``k``'s weight is the relative drop of the target's score when the channel is set to
    0: ``w_k = (y - y_k) / y``; the map is ``ReLU(sum_k w_k A_k)``. The channels are zeroed in the
    ONNX graph (:func:`ablation_graph`), ``batch_size`` ablations per ONNX Runtime call; channels
    that are zero everywhere have weight 0 and are not run. A zero score ``y`` gives zero
    weights. pytorch-grad-cam's ``AblationCAM`` zeroes the channel too when the layer's
    activations have minimum 0 (after a ReLU, where the two agree); on layers with negative values
    it writes a large negative number instead, which onnxviz does not copy (the paper zeroes).
    """

    name = "ablationcam"
    summary = "Ablation-CAM: channels weighted by the score's drop when each one is zeroed"
    needs_gradients = False

    def channel_weights(self, activations, gradients, *, inputs, targets):
        m, bs = self.model, self.params["batch_size"]
        lay = self.view.layout
        proto = ablation_graph(m, self.layer.tensor, lay)
        sess = m.session(proto)
        dtype = helper.tensor_dtype_to_np_dtype(proto.graph.input[-1].type.tensor_type.elem_type)
        # a batch-1 graph runs one ablation at a time (its KEEP rows then match its input rows)
        step = 1 if m.fixed_batch else m.fit_batch(bs, what="an ablation batch")
        channels = activations.shape[1]
        shape = [channels if c == "C" else 1 for c in lay[1:]]
        weights = np.zeros(activations.shape[:2], np.float32)
        for i, (acts, t) in enumerate(zip(activations, targets)):
            live = np.flatnonzero(np.abs(acts).reshape(channels, -1).max(axis=1) > 0)
            keep = np.ones((len(live) + 1, *shape), dtype)  # row 0: nothing ablated
            keep.reshape(len(keep), channels)[np.arange(1, len(keep)), live] = 0
            scores = np.empty(len(keep), np.float64)
            for part in G.chunks(len(keep), step):
                n = part.stop - part.start
                x = np.repeat(inputs[i][None], n, axis=0)
                (out,) = runtime.run_batched(sess, {m.input.name: x, KEEP: keep[part]},
                                             [m.score_output], n, m.fixed_batch)
                scores[part] = out.reshape(n, -1)[:, t]
            y = scores[0]
            if y != 0:
                weights[i, live] = (y - scores[1:]) / y
        return weights


def bias_layers(model) -> list[tuple[str, np.ndarray]]:
    """``(output tensor, bias per channel)`` of every Conv with a bias and every
    BatchNormalization on the way to the score, 4-D outputs only. A BatchNormalization's bias is
    the shift it applies, ``B - mean * scale / sqrt(var + epsilon)``."""
    from ..model.layouts import graph_index

    idx = graph_index(model)
    needed = idx.ancestors(model.score_output)
    out = []
    for node in model.proto.graph.node:
        b = None
        if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
            b = idx.constant(node.input[2])
        elif node.op_type == "BatchNormalization":
            scale, shift, mean, var = (idx.constant(node.input[k]) for k in range(1, 5))
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            if all(v is not None for v in (scale, shift, mean, var)):
                b = shift - mean * scale / np.sqrt(var + eps)
        tensor = node.output[0]
        if b is not None and tensor in needed and len(model.shape_of(tensor)) == 4:
            out.append((tensor, np.asarray(b, np.float32)))
    return out


def _unit(maps: np.ndarray) -> np.ndarray:
    """(K, h, w) maps each shifted and scaled to [0, 1] (FullGrad's ``psi``; 1e-7 guards 0)."""
    a = maps - maps.min(axis=(1, 2), keepdims=True)
    return a / (1e-7 + a.max(axis=(1, 2), keepdims=True))


@register
class FullGrad(Explainer):
    """FullGrad (Srinivas & Fleuret 2019, https://arxiv.org/abs/1905.00780, eq. 9).

    ``sum_c psi(|x_c dS/dx_c|) + sum_layers sum_k psi(|b_k dS/dz_k|)``: the input-gradient term
    per input channel, and the bias-gradient term of every channel ``k`` of every Conv and
    BatchNormalization with a bias (``z`` its output; :func:`bias_layers`), where ``psi`` takes
    each map to [0, 1] (:func:`_unit`) and upsamples it bilinearly to the input. As
    pytorch-grad-cam's ``FullGrad``: maps are normalised before they are upsampled; that
    implementation normalises the final sum once more, onnxviz keeps it (a sum of [0, 1] maps).
    A model exported with BatchNormalization folded into its convolutions has one bias per
    Conv where the torch original had two (Conv and BatchNorm2d), so the maps differ there.

    Args:
        model: an :class:`onnxviz.Model`.
        batch_size: images per run of the gradient graph.
    """

    name = "fullgrad"
    family = "cam"
    summary = "FullGrad: input-gradient and every conv/BN bias-gradient map, normalised and summed"

    def __init__(self, model, *, batch_size: int = 16):
        G.check_positive("batch_size", batch_size)
        super().__init__(model, batch_size=batch_size)
        self.biases = bias_layers(model)

    def explain(self, images, target=None) -> list[Explanation]:
        m, bs = self.model, self.params["batch_size"]
        timer = Timer()
        pixels, x, targets, scores = G.prepare(m, images, target, bs, timer)
        size = m.input.size
        heat = np.zeros((len(x), *size), np.float32)
        run_scores = []
        for part in G.chunks(len(x), bs):  # reduce each batch to maps: gradients of every layer
            with timer("gradients"):
                wrt = [m.input.name, *(t for t, _ in self.biases)]
                grads, _, s = G.gradients(m, x[part], targets[part], wrt, (), None)
                run_scores.append(s)
            with timer("map"):
                heat[part] = self._maps(x[part], grads, size)
        scores = np.concatenate(run_scores) if scores is None else scores
        heat = G.image_shaped(m, heat[..., None])[..., 0]
        times = timer.result(share=len(x))
        return [
            Explanation(
                heatmap=heat[i], raw=heat[i], target=int(t), label=m.label_of(int(t)),
                score=float(scores[i, t]), method=self.name, params=dict(self.params),
                timings=times, image=G.image_shaped(m, pixels)[i],
                extras={"bias_layers": len(self.biases)},
            )
            for i, t in enumerate(targets)
        ]

    def _maps(self, x, grads, size) -> np.ndarray:
        m = self.model
        xin = G.channels_last(x, m.input.layout)
        gin = G.channels_last(grads[m.input.name], m.input.layout)
        n, h, w, c = xin.shape
        term = np.abs(xin * gin).transpose(0, 3, 1, 2).reshape(n * c, h, w)
        out = G.upsample(_unit(term).reshape(n, c, h, w).sum(axis=1), size)
        for tensor, b in self.biases:  # upsampling is linear: sum the channels first
            g = grads[tensor]
            k = g.shape[1]
            term = np.abs(g * b[None, :, None, None]).reshape(n * k, *g.shape[2:])
            out += G.upsample(_unit(term).reshape(n, k, *g.shape[2:]).sum(axis=1), size)
        return out
