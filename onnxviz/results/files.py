"""Output files: collision-free names, the ``--out`` folder, and the pictures of a record.

The pictures are drawn once here for every door: ``onnxviz explain`` and the Ray engine write them
as ``<stem>.<method>.{heatmap,overlay,mask}.png`` (a stem per box or region of a detector or a
segmenter: :func:`target_stem`; a detector's boxes also in ``<image>.<method>.boxes.png``; plus
``.superpixels.png`` for LIME and ``.heatmap.npy`` when asked), the server sends the heatmap and the overlay as base64 PNG text.
How they are drawn is a :class:`Render` (the command line's rendering flags, same defaults).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OnnxvizError

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class Render:
    """How the pictures are drawn: the rendering flags of ``onnxviz explain`` (same defaults);
    ``npy`` also writes each heatmap as ``<stem>.<method>.heatmap.npy`` beside them."""

    cmap: str = "jet"
    alpha: float = 0.4
    clip: float = 1.0
    threshold: float = 0.5
    top_percent: float | None = None
    npy: bool = False


#: The pictures of ``onnxviz explain``: its rendering defaults (also the server's).
PNGS = Render()

#: The pictures of a record, in the order they are written.
PICTURES = ("heatmap", "overlay", "mask", "superpixels")


def safe_stem(name: str) -> str:
    """``name`` as a file-name-safe stem (``cat 1`` -> ``cat_1``; nothing left -> ``image``)."""
    return _UNSAFE.sub("_", name).strip("._") or "image"


def stems(sources: list[str]) -> list[str]:
    """A distinct, file-name-safe stem per source: ``cat``, then ``cat-2`` for a second ``cat.*``,
    never one that another source already has (``cat-2.png`` next to ``cat.png`` and
    ``cat.bmp`` gives ``cat-2`` and ``cat-3``)."""
    bases = [safe_stem(s.split(":", 1)[1] if s.startswith("skimage:") else Path(s).stem)
             for s in sources]
    taken = set()
    out = []
    for base in bases:
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        out.append(name)
    return out


def base_stem(key: str) -> str:
    """The file-name-safe stem of an image key's file name (``photos/cat 1.jpg`` -> ``cat_1``)."""
    name = key.rstrip("/").rsplit("/", 1)[-1]
    return safe_stem(name.rsplit(".", 1)[0] if "." in name else name)


def stem_of(key: str, shared: frozenset[str] | None) -> str:
    """The stem of an image key when the images are not all known in one list (the Ray engine's
    batches): :func:`base_stem`, plus a short hash of the whole key when other images of the run
    have the same stem (``shared``; None: not known, always hash)."""
    base = base_stem(key)
    if shared is not None and base not in shared:
        return base
    return f"{base}-{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def shared_stems(keys) -> frozenset[str]:
    """The stems that more than one of ``keys`` has."""
    seen: set[str] = set()
    shared: set[str] = set()
    for k in keys:
        b = base_stem(k)
        (shared if b in seen else seen).add(b)
    return frozenset(shared)


def out_dir(path) -> Path:
    """Create the output folder (and parents); a file in the way or no permission: a user error."""
    if path is None or not str(path).strip() or "\0" in str(path):
        raise OnnxvizError(f"--out must name a folder, got {str(path)!r}")
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OnnxvizError(f"output path {p} exists and is not a folder") from None
    except OSError as e:
        raise OnnxvizError(f"cannot create output folder {p}: {e.strerror or e}") from None
    if not p.is_dir():
        raise OnnxvizError(f"output path {p} is not a folder")
    return p


def pictures(image: np.ndarray, e, render: Render = PNGS, kinds=PICTURES) -> dict[str, np.ndarray]:
    """The RGB pictures of an explanation among ``kinds``, in :data:`PICTURES` order: ``heatmap``
    (the coloured map at the model's input size), ``overlay`` and ``mask`` (on ``image``, at its
    size), ``superpixels`` (LIME's chosen segments, only for an explanation that has them)."""
    from .. import viz

    draw = {
        "heatmap": lambda: viz.apply_colormap(e.heatmap, render.cmap, clip_percent=render.clip),
        "overlay": lambda: viz.overlay(image, e.heatmap, alpha=render.alpha, cmap=render.cmap,
                                       clip_percent=render.clip),
        "mask": lambda: viz.apply_mask(image, e.heatmap, threshold=render.threshold,
                                       top_percent=render.top_percent),
        "superpixels": lambda: (viz.method_picture(image, e, clip_percent=render.clip)
                                if viz.superpixels_of(e) is not None and e.raw is not None
                                else None),
    }
    pics = {k: draw[k]() for k in PICTURES if k in kinds}
    box = getattr(e, "box", None)
    if box is not None:  # a detector's box, on the pictures at the photo's size
        for k in ("overlay", "mask"):
            if pics.get(k) is not None:
                pics[k] = viz.draw_box(pics[k], box, f"{e.label} {e.score:.2f}")
    return {k: p for k, p in pics.items() if p is not None}


def write_explanation_pngs(folder: Path, stem: str, image: np.ndarray, e,
                           render: Render = PNGS) -> dict[str, str]:
    """Write ``<stem>.<method>.{heatmap,overlay,mask}.png`` (+ superpixels for LIME, + the
    float32 ``.heatmap.npy`` with ``render.npy``); returns ``{kind: path}`` (a record's
    ``outputs``).

    The heatmap PNG is the coloured map at the model's input resolution; overlay and mask are at
    the original image's size. A map that is no finding (NaN or infinite values, or blank:
    :func:`onnxviz.explainers.base.not_drawn`) is not drawn (``{}``).
    """
    from .. import viz
    from ..explainers.base import not_drawn

    if not_drawn(e):  # not finite or blank: reported by the explainer's warning; never drawn
        return {}
    base = f"{stem}.{e.method}"
    paths = {}
    for kind, pic in pictures(image, e, render).items():
        paths[kind] = str(viz.write_png(folder / f"{base}.{kind}.png", pic))
    if render.npy:
        p = folder / f"{base}.heatmap.npy"
        try:
            np.save(p, np.asarray(e.heatmap, np.float32))
        except OSError as err:
            raise OnnxvizError(f"cannot write {p}: {err.strerror or err}") from None
        paths["heatmap_npy"] = str(p)
    return paths


def target_stem(name: str, e, k: int, target=None) -> str:
    """The file stem of one result of image ``name``: ``name`` itself for its top class;
    ``name.t<class>`` for a chosen class; ``name.box<K>`` for a detector's K-th detection
    (``k``-th of the image, or the index ``target`` chose; ``name.box`` for a user's box);
    ``name.<class>`` for a segmenter's region."""
    if getattr(e, "box", None) is not None:
        if isinstance(target, (dict, list, tuple)):
            return f"{name}.box"
        return f"{name}.box{k if target is None else int(target)}"
    if getattr(e, "region", None) is not None:
        return f"{name}.{safe_stem(e.label)}"
    return name if target is None else f"{name}.t{e.target}"


def write_box_grid(folder: Path, stem: str, method: str, image: np.ndarray, written,
                   render: Render = PNGS) -> dict[str, str]:
    """``<stem>.<method>.boxes.png``: every drawn box of one image, each on its own map, in a
    grid (``written``: ``(explanation, its outputs)`` pairs of the image's boxes); returns
    ``{"boxes": path}``, or ``{}`` when no box was drawn."""
    from .. import viz

    drawn = [e for e, paths in written if paths and getattr(e, "box", None) is not None]
    if not drawn:
        return {}
    overlays = [pictures(image, e, render, kinds=("overlay",))["overlay"] for e in drawn]
    titles = [f"{k}: {e.label} {e.score:.2f}" for k, e in enumerate(drawn)]
    path = viz.write_png(folder / f"{stem}.{method}.boxes.png", viz.box_grid(overlays, titles))
    return {"boxes": str(path)}
