"""One explanation as a picture for people: Jupyter's rich display, ``show()`` and ``save()``.

The picture is the heatmap over the pixels the model saw (``Explanation.image``), or the coloured
heatmap alone when the explanation has no image, scaled up with nearest-neighbour sampling when
the model's input is small (a 28 x 28 map stays readable, its cells stay sharp), under a caption:
method, target, label and score.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .colormaps import apply_colormap
from .grids import caption
from .overlay import overlay
from .png import data_uri, encode_png, write_png

#: Pictures narrower than this are scaled up by a whole factor (nearest neighbour).
MIN_SIDE = 224
#: Saturate the top 1 % of a map's values, as the CLI does, so a few extremes do not darken it.
CLIP_PERCENT = 1.0


def caption_text(e) -> str:
    """``"gradcam: class 285 Egyptian cat, logit 12.3"`` for an :class:`Explanation` (the
    score's unit: probability or logit)."""
    from ..explainers.base import not_drawn

    note = f" ({not_drawn(e)}: no valid map)" if not_drawn(e) else ""
    return (f"{e.method}: class {int(e.target)} {e.label}, "
            f"{getattr(e, 'score_kind', 'score')} {float(e.score):.4g}{note}")


def picture(e, *, cmap: str = "jet", alpha: float = 0.4) -> np.ndarray:
    """The explanation's overlay (RGB ``uint8``), at least :data:`MIN_SIDE` pixels wide, without
    its caption."""
    from ..explainers.base import not_drawn

    if e.image is not None and not_drawn(e):  # no finding: the pixels alone, under the note
        pic = np.asarray(e.image)
        pic = pic if pic.dtype == np.uint8 else np.clip(pic, 0, 255).astype(np.uint8)
    elif e.image is not None:
        pic = overlay(e.image, e.heatmap, alpha=alpha, cmap=cmap, clip_percent=CLIP_PERCENT)
    else:
        pic = apply_colormap(e.heatmap, cmap, clip_percent=CLIP_PERCENT)
    factor = -(-MIN_SIDE // pic.shape[1])  # ceil: 28 px -> x8, 224 px -> x1
    if factor > 1:
        pic = np.repeat(np.repeat(pic, factor, axis=0), factor, axis=1)
    return pic


def captioned(e, *, cmap: str = "jet", alpha: float = 0.4) -> np.ndarray:
    """:func:`picture` with the whole caption written above it, over as many lines as it needs
    (ASCII, as PNG files carry it)."""
    return caption(picture(e, cmap=cmap, alpha=alpha), caption_text(e), wrap=True)


def to_png(e) -> bytes:
    """PNG bytes of :func:`captioned`, Jupyter's ``image/png`` form."""
    return encode_png(captioned(e))


def to_html(e) -> str:
    """An ``<img>`` of :func:`picture` and an HTML caption, Jupyter's ``text/html`` form."""
    pic = picture(e)
    text = html.escape(caption_text(e))
    return (f'<figure style="display:inline-block;margin:4px">'
            f'<img src="{data_uri(pic)}" width="{pic.shape[1]}" alt="{text}">'
            f'<figcaption style="font:12px sans-serif">{text}</figcaption></figure>')


def show(e, *, cmap: str = "jet", alpha: float = 0.4) -> None:
    """Shows the overlay with its caption through matplotlib; does nothing without matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots()
    ax.imshow(picture(e, cmap=cmap, alpha=alpha))
    ax.set_title(caption_text(e), fontsize=10)
    ax.axis("off")
    plt.show()
    plt.close(fig)


def save(e, path, *, cmap: str = "jet", alpha: float = 0.4) -> Path:
    """Writes the overlay with its whole caption to ``path`` as PNG; returns the path.

    With the image as it was given (``e.source``), the overlay is at the photo's own size and
    aspect ratio (the heatmap resized to it, as ``onnxviz explain`` draws), the caption wrapped
    over as many lines as it needs; otherwise :func:`picture` at the model's input size.
    """
    pic = _on_photo(e, cmap=cmap, alpha=alpha)
    if pic is None:
        return write_png(path, captioned(e, cmap=cmap, alpha=alpha))
    return write_png(path, caption(pic, caption_text(e), wrap=True))


def _on_photo(e, *, cmap: str, alpha: float):
    """The overlay on the original photo, or None (no source, a flattened input, a map that is
    not the image's)."""
    if e.source is None or e.image is None or np.ndim(e.heatmap) != 2 \
            or np.shape(e.image)[:2] != np.shape(e.heatmap):
        return None
    from ..imageio import read_image

    try:
        photo = read_image(e.source)
    except Exception:  # the file moved since: the model-size picture still says it all
        return None
    pic = overlay(photo, e.heatmap, alpha=alpha, cmap=cmap, clip_percent=CLIP_PERCENT)
    factor = -(-MIN_SIDE // pic.shape[1])
    if factor > 1:
        pic = np.repeat(np.repeat(pic, factor, axis=0), factor, axis=1)
    return pic
