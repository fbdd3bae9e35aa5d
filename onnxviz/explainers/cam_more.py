"""More class activation maps: Eigen-CAM, Eigen-Grad-CAM and Grad-CAM element-wise.

They run the CAM pipeline of :class:`~onnxviz.explainers.cam.CAMExplainer` (activations and, when
needed, gradients of one layer per batch; the map at the layer's resolution in ``raw``, upsampled
in ``heatmap``) and are checked against pytorch-grad-cam's ``EigenCAM``, ``EigenGradCAM`` and
``GradCAMElementWise`` on the same torch network exported to ONNX.
"""

from __future__ import annotations

import numpy as np

from .cam import CAMExplainer
from .registry import register


def first_component(maps: np.ndarray) -> np.ndarray:
    """(N, C, h, w) -> (N, h, w): each position's projection on the first principal component.

    The positions are the samples and the channels the features: ``X`` (h*w, C) is centred per
    channel, ``v`` is the first right singular vector of ``X`` and the map is ``X v``. A singular
    vector has no sign of its own; this one is LAPACK's (``numpy.linalg.svd``, float32, the same
    call as pytorch-grad-cam's ``get_2d_projection``), so the maps equal the peer's, flipped
    regions included. Non-finite values count as 0, as there.
    """
    out = np.zeros((maps.shape[0], *maps.shape[2:]), np.float32)
    for i, a in enumerate(maps):
        x = np.nan_to_num(a.reshape(a.shape[0], -1).T.astype(np.float32), nan=0.0, posinf=0.0,
                          neginf=0.0)
        x = x - x.mean(axis=0)
        if not x.any():
            continue  # a constant layer: no direction, no map
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        out[i] = (x @ vt[0]).reshape(a.shape[1:])
    return out


@register
class EigenCAM(CAMExplainer):
    """Eigen-CAM (Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299, eq. 5-6).

    The map is the layer's activations projected on their first principal component
    (:func:`first_component`), then ReLU. It uses no gradient and no target: every class gets
    the same map.
    """

    name = "eigencam"
    summary = "Eigen-CAM: the first principal component of the layer's activations"
    needs_gradients = False

    def layer_map(self, activations, gradients, *, inputs, targets):
        return np.maximum(first_component(activations), 0)


@register
class EigenGradCAM(CAMExplainer):
    """Eigen-Grad-CAM: Eigen-CAM of the gradient-weighted activations ``dS/dA * A``
    (pytorch-grad-cam's variant of Muhammad & Yeasin 2020), so the map depends on the target."""

    name = "eigengradcam"
    summary = "Eigen-Grad-CAM: first principal component of activations times gradients"

    def layer_map(self, activations, gradients, *, inputs, targets):
        return np.maximum(first_component(gradients * activations), 0)


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
