"""Score-CAM: channel weights from the model's response to the image masked by each channel."""

from __future__ import annotations

import numpy as np

from . import _gradient as G
from .cam import CAMExplainer
from .registry import register


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
    """

    name = "scorecam"
    summary = "Score-CAM: channels weighted by the score of the image masked with each of them"
    needs_gradients = False

    def channel_weights(self, activations, gradients, *, inputs, targets):
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
