"""Score-CAM: channel weights from the model's response to the image masked by each channel."""

from __future__ import annotations

import numpy as np

from . import _gradient as G
from .cam import CAMExplainer
from .cam_options import upsample_corners
from .ranges import CAM_WEIGHTS
from .registry import register

#: Score-CAM's channel weightings (the ``weights`` option).
WEIGHTS = CAM_WEIGHTS


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def channel_masks(activations: np.ndarray, size) -> np.ndarray:
    """(C, h, w) maps of one image -> (C, H, W) masks in [0, 1]: upsampled, min-max normalised.

    A constant map gives an all-zero mask.
    """
    up = G.upsample(activations, size)
    lo = up.min(axis=(1, 2), keepdims=True)
    span = up.max(axis=(1, 2), keepdims=True) - lo
    return np.divide(up - lo, span, out=np.zeros_like(up), where=span > 0)


@register
class ScoreCAM(CAMExplainer):
    """Score-CAM (Wang et al. 2020, https://arxiv.org/abs/1910.01279, eq. 4-8).

    Each channel's map is upsampled to the input size and min-max normalised to a mask ``H_k``; its
    weight is the target's softmax probability on the masked input ``X * H_k`` (the model input
    tensor times the mask, as in the authors' code); the map is ``ReLU(sum_k w_k A_k)``. One model
    run per channel and image, batched by ``batch_size``; channels that are zero everywhere
    contribute nothing and are not run. A single-output (regression) model uses its raw score.

    Args:
        weights: ``"probability"`` (the paper, above) or ``"channel_softmax"``: pytorch-grad-cam's
            weighting, the softmax over the channels of the target's raw score on each masked
            input, with that library's masks too (upsampled with aligned corners, ``1e-8`` in the
            normalisation, every channel run, constant ones masking everything out).
        Other options: as :class:`~.cam.CAMExplainer`.
    """

    name = "scorecam"
    summary = "Score-CAM: channels weighted by the score of the image masked with each of them"
    needs_gradients = False

    def __init__(self, model, *, layer: str | list[str] | None = None, batch_size: int = 16,
                 weights: str = "probability", relu: bool = True, eigen_smooth: bool = False,
                 aug_smooth: bool = False):
        self.setup(model, layer=layer, batch_size=batch_size, relu=relu, weights=weights,
                   eigen_smooth=eigen_smooth, aug_smooth=aug_smooth)

    def channel_weights(self, activations, gradients, *, inputs, targets):
        if self.opts["weights"] == "channel_softmax":
            return self._channel_softmax(activations, inputs, targets)
        m, bs = self.model, self.params["batch_size"]
        size = m.input.size
        layout = m.input.layout
        weights = np.zeros(activations.shape[:2], np.float32)
        for i, (acts, t) in enumerate(zip(activations, targets)):
            live = np.flatnonzero(np.abs(acts).reshape(len(acts), -1).max(axis=1) > 0)
            for part in G.chunks(len(live), bs):
                ks = live[part]
                masks = channel_masks(acts[ks], size)
                masks = masks[:, None] if layout == "NCHW" else masks[..., None]
                scores = m.forward((inputs[i][None] * masks).astype(np.float32), batch_size=bs)
                probs = _softmax(scores) if scores.shape[1] > 1 else scores
                weights[i, ks] = probs[:, t]
        return weights

    def _channel_softmax(self, activations, inputs, targets):
        """pytorch-grad-cam's ``ScoreCAM.get_cam_weights``: softmax over k of score[t](X * H_k)."""
        m, bs = self.model, self.params["batch_size"]
        weights = np.zeros(activations.shape[:2], np.float32)
        for i, (acts, t) in enumerate(zip(activations, targets)):
            up = upsample_corners(acts, m.input.size)
            lo = up.min(axis=(1, 2), keepdims=True)
            masks = (up - lo) / (up.max(axis=(1, 2), keepdims=True) - lo + np.float32(1e-8))
            masks = masks[:, None] if m.input.layout == "NCHW" else masks[..., None]
            scores = np.empty(len(acts), np.float32)
            for part in G.chunks(len(acts), bs):
                x = (inputs[i][None] * masks[part]).astype(np.float32)
                scores[part] = m.forward(x, batch_size=bs)[:, t]
            weights[i] = _softmax(scores)
        return weights
