"""Colormaps as 256-entry RGB look-up tables, heatmap normalisation and a colour bar.

Every function here is pure: numpy arrays in, new arrays out; images are RGB ``uint8`` (H, W, 3).

Colormaps:

- ``jet``: the rainbow map of the Keras Grad-CAM and MATLAB articles (MATLAB's definition, equal
  to matplotlib's ``jet``; OpenCV's ``COLORMAP_JET`` differs by up to 34 levels);
- ``turbo``: Google's improved rainbow (Mikhailov 2019), smoother in lightness than jet;
- ``viridis``: perceptually uniform, colour-blind safe (matplotlib's default);
- ``parula``: MATLAB's default map, for readers who know MATLAB's figures;
- ``inferno``: perceptually uniform, dark to bright;
- ``bwr``: diverging blue-white-red for signed maps (Integrated Gradients, LIME weights),
  white at zero.

``turbo``, ``viridis`` and ``inferno`` are OpenCV's tables (identical to matplotlib's);
``parula`` is OpenCV's copy of MATLAB's default map since R2014b.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import OptionError

_CV2_MAPS = {"turbo": "COLORMAP_TURBO", "viridis": "COLORMAP_VIRIDIS",
             "parula": "COLORMAP_PARULA", "inferno": "COLORMAP_INFERNO"}

#: Names accepted by :func:`apply_colormap` (and the CLI's ``--cmap``).
COLORMAPS = ("jet", "turbo", "viridis", "parula", "inferno", "bwr")

#: Colormaps meant for signed data: zero maps to the middle of the table.
DIVERGING = frozenset({"bwr"})


# Piecewise-linear RGB anchors (position, value), as MATLAB and matplotlib define these maps.
_SEGMENTS = {
    # MATLAB's jet as matplotlib's ``_jet_data`` has it (the Keras Grad-CAM article's ``cm.jet``)
    "jet": (((0, 0), (0.35, 0), (0.66, 1), (0.89, 1), (1, 0.5)),
            ((0, 0), (0.125, 0), (0.375, 1), (0.64, 1), (0.91, 0), (1, 0)),
            ((0, 0.5), (0.11, 1), (0.34, 1), (0.65, 0), (1, 0))),
    # blue -> white -> red, white at the middle (matplotlib's ``bwr``)
    "bwr": (((0, 0), (0.5, 1), (1, 1)), ((0, 0), (0.5, 1), (1, 0)), ((0, 1), (0.5, 1), (1, 0))),
}


def _segmented(name: str) -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    chans = [np.interp(x, [p for p, _ in seg], [v for _, v in seg]) for seg in _SEGMENTS[name]]
    return np.clip(np.rint(np.stack(chans, axis=1) * 255.0), 0, 255).astype(np.uint8)


@lru_cache(maxsize=None)
def _lut(name: str) -> np.ndarray:
    if name in _SEGMENTS:
        return _segmented(name)
    import cv2

    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    bgr = cv2.applyColorMap(ramp, getattr(cv2, _CV2_MAPS[name]))
    return np.ascontiguousarray(bgr.reshape(256, 3)[:, ::-1])


def colormap_lut(name: str = "jet") -> np.ndarray:
    """The (256, 3) ``uint8`` RGB look-up table of colormap ``name`` (see :data:`COLORMAPS`)."""
    if name not in COLORMAPS:
        raise OptionError(f"unknown colormap {name!r}; choose from: {', '.join(COLORMAPS)}")
    lut = _lut(name)
    lut.setflags(write=False)
    return lut


def normalize(heatmap, vmin: float | None = None, vmax: float | None = None,
              symmetric: bool = False, clip_percent: float = 0.0) -> np.ndarray:
    """Scale ``heatmap`` to float32 [0, 1], clipping to [vmin, vmax].

    Args:
        heatmap: 2-D array; NaN and infinities are treated as ``vmin``.
        vmin: value mapped to 0 (the finite minimum when None; ``-max|h|`` when ``symmetric``).
        vmax: value mapped to 1 (the finite maximum when None; ``max|h|`` when ``symmetric``).
        symmetric: centre the scale on zero, so 0 maps to 0.5 (for diverging colormaps).
        clip_percent: when ``vmax`` is automatic, saturate the top ``clip_percent`` % of values
            (of ``|h|`` when symmetric) instead of letting a few outliers darken the rest: the
            ``outlier_perc`` of Captum's visualizations, useful for gradient maps. Ignored when it
            would leave no range (a map that is mostly one value).

    Returns:
        float32 array of the same shape in [0, 1]; a constant map becomes all zeros
        (all 0.5 when ``symmetric``).
    """
    h = np.asarray(heatmap, dtype=np.float64)
    finite = np.isfinite(h)
    vals = h[finite]
    if not 0.0 <= float(clip_percent) < 100.0:
        raise OptionError(f"clip_percent must be in [0, 100), got {clip_percent}")
    if symmetric:
        m = _top(np.abs(vals), clip_percent, 0.0)
        lo = -m if vmin is None else float(vmin)
        hi = m if vmax is None else float(vmax)
    else:
        lo = float(vmin) if vmin is not None else (float(vals.min()) if vals.size else 0.0)
        hi = float(vmax) if vmax is not None else _top(vals, clip_percent, lo)
    h = np.where(finite, h, lo)
    if not hi > lo:
        return np.full(h.shape, 0.5 if symmetric else 0.0, np.float32)
    return np.clip((h - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _top(vals: np.ndarray, clip_percent: float, floor: float) -> float:
    """The largest value, or the ``100 - clip_percent`` percentile when that is above ``floor``."""
    if not vals.size:
        return floor
    top = float(vals.max())
    if clip_percent > 0:
        q = float(np.percentile(vals, 100.0 - float(clip_percent)))
        if q > floor:
            return q
    return top


def apply_colormap(heatmap, cmap: str = "jet", vmin: float | None = None,
                   vmax: float | None = None, symmetric: bool | None = None,
                   clip_percent: float = 0.0) -> np.ndarray:
    """Colour a 2-D heatmap: RGB ``uint8`` (H, W, 3).

    Args:
        heatmap: 2-D array of any real dtype.
        cmap: a name from :data:`COLORMAPS`.
        vmin, vmax: the value range mapped to the two ends of the map (see :func:`normalize`).
        symmetric: centre on zero; defaults to True for diverging maps (``bwr``).
        clip_percent: saturate the top share of values (see :func:`normalize`).
    """
    lut = colormap_lut(cmap)
    h = np.asarray(heatmap)
    if h.ndim != 2:
        raise OptionError(f"a heatmap must be 2-D, got shape {h.shape}")
    sym = (cmap in DIVERGING) if symmetric is None else symmetric
    norm = normalize(h, vmin, vmax, symmetric=sym, clip_percent=clip_percent)
    idx = np.rint(norm * 255.0).astype(np.uint8)
    return lut[idx]


def colorbar(cmap: str = "jet", length: int = 256, thickness: int = 16,
             vertical: bool = True) -> np.ndarray:
    """A colour bar image (RGB ``uint8``): low values at the bottom (vertical) or left.

    Args:
        cmap: colormap name.
        length: pixels along the bar.
        thickness: pixels across the bar.
        vertical: a vertical bar, ``(length, thickness, 3)``, or a horizontal one,
            ``(thickness, length, 3)``.
    """
    if length < 2 or thickness < 1:
        raise OptionError("colour bar needs length >= 2 and thickness >= 1, "
                          f"got {length}, {thickness}")
    ramp = np.linspace(0.0, 1.0, int(length))
    row = apply_colormap(ramp[None, :], cmap, vmin=0.0, vmax=1.0, symmetric=False)[0]
    bar = np.repeat(row[None, :, :], int(thickness), axis=0)
    if vertical:
        bar = np.ascontiguousarray(bar.transpose(1, 0, 2)[::-1])
    return bar
