"""Pieces of the CAM options (:class:`~onnxviz.explainers.cam.CAMExplainer`): several layers,
test-time augmentation, principal-component smoothing, and the checks of those options.

Where several maps are averaged (several layers, or the augmented copies of ``aug_smooth``) the
maps are first brought to one scale as pytorch-grad-cam 1.5.7 does (``BaseCAM``:
``compute_cam_per_layer``, ``aggregate_multi_layers``, ``forward_augmentation_smoothing``), so that
the result equals that library's output: each layer's map min-max scaled to [0, 1] at the layer's
resolution (:func:`unit`), upsampled to the input, the layers averaged and scaled once more
(:func:`peer_scaled`); the augmented copies' maps are flipped back and averaged.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from . import _gradient as G
from ._checks import check_flags  # noqa: F401  (re-exported: the CAM options' check)

#: pytorch-grad-cam's default test-time augmentation (ttach): horizontal flip (off, on) times a
#: factor on the input tensor, in ttach's order.
AUGMENTATIONS = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))

#: Most layers one CAM may average.
MAX_LAYERS = 64


class LayerNames:
    """The range of the CAM family's ``layer`` option (used as a :class:`~.ranges.Range`): one
    layer name, a list of names (their maps averaged), or None (the default layer)."""

    def describe(self) -> str:
        return f"a layer name, or for the CAM methods a comma list of up to {MAX_LAYERS} (averaged)"

    def check(self, name: str, value) -> None:
        if value is None or isinstance(value, str):
            return
        if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_LAYERS or not all(
                isinstance(v, str) and v for v in value):
            raise OptionError(f"{name} must be a layer name or a list of 1 to {MAX_LAYERS} layer "
                              f"names, got {value!r}"[:300])


def layer_names(layer) -> list:
    """The ``layer`` option as a list (``[None]`` for the default layer), duplicates dropped."""
    if layer is None or isinstance(layer, str):
        return [layer]
    return list(dict.fromkeys(layer))


def augment(x: np.ndarray, layout: str, flip: bool, factor: float) -> np.ndarray:
    """The model input tensor flipped left-right (when ``flip``) and multiplied by ``factor``
    (ttach's ``HorizontalFlip`` and ``Multiply`` on the normalised tensor)."""
    out = np.flip(x, axis=layout.index("W")) if flip else x
    return (out * np.float32(factor)).astype(x.dtype, copy=False)


def unit(maps: np.ndarray) -> np.ndarray:
    """(N, h, w) maps each shifted and scaled to [0, 1] (pytorch-grad-cam's ``scale_cam_image``:
    ``1e-7`` in the denominator, so a constant map gives 0)."""
    a = maps - maps.min(axis=(1, 2), keepdims=True)
    return (a / (1e-7 + a.max(axis=(1, 2), keepdims=True))).astype(np.float32)


def peer_scaled(maps: list, size) -> np.ndarray:
    """Layer maps (each (N, h_l, w_l)) -> (N, H, W): each scaled to [0, 1], upsampled, then the
    layers averaged and scaled again, as pytorch-grad-cam returns one image's map."""
    total = sum(G.upsample(unit(m), size) for m in maps)
    return unit(total / len(maps))


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


def weighted(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """(N, C, h, w) ``w_k A_k`` for (N, C) or (N, C, h, w) weights, float32."""
    w = weights[:, :, None, None] if weights.ndim == 2 else weights
    return w.astype(np.float32) * activations.astype(np.float32)


def upsample_corners(maps: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of (K, h, w) maps to ``size`` with the corners aligned (torch's
    ``UpsamplingBilinear2d``, ``align_corners=True``): output pixel ``i`` reads input position
    ``i * (h - 1) / (H - 1)``."""

    def matrix(n_in: int, n_out: int) -> np.ndarray:
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
        lo = np.minimum(np.floor(pos).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = (pos - lo).astype(np.float32)
        m = np.zeros((n_out, n_in), np.float32)
        m[np.arange(n_out), lo] += 1 - frac
        m[np.arange(n_out), hi] += frac
        return m

    mh, mw = matrix(maps.shape[1], int(size[0])), matrix(maps.shape[2], int(size[1]))
    return np.einsum("Hh,khw,Ww->kHW", mh, maps.astype(np.float32), mw)
