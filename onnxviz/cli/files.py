"""Inputs and outputs of the explaining subcommands: image arguments, rendering flags, progress
bars. What the files are called and how they are drawn is :mod:`onnxviz.results`'s."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import OnnxvizError
from ..results import Render, printable, stems
from ..results import expand_images as _expand
from .common import warn


def expand_images(args: list[str]) -> list[str]:
    """Image arguments -> image sources (:func:`onnxviz.results.expand_images`): files,
    ``skimage:NAME``, URLs and the images inside folders; a folder's other files are counted in
    one warning line. Nothing is decoded here (see :func:`iter_images`).
    """
    return _expand(args, warn)


def read_images(sources: list[str]) -> list[np.ndarray]:
    """Read every source with :func:`onnxviz.read_image` at full precision (``exact``: a 16-bit
    image is explained as it is, shown rounded); the first bad one raises."""
    from ..imageio import read_image

    return [read_image(s, exact=True) for s in sources]


def iter_images(sources: list[str], skipped: list, strict: bool = False):
    """Yield ``(index, source, pixels)``, decoding one image at a time (a folder of large photos
    never sits in memory whole). An unreadable image is appended to ``skipped`` as
    ``(source, reason)`` and reported in one line, unless ``strict``, where it raises."""
    from ..imageio import read_image
    for i, src in enumerate(sources):
        try:
            img = read_image(src, exact=True)
        except OnnxvizError as e:
            if strict:
                raise
            skipped.append((src, str(e)))
            warn(f"skipped {printable(src)}: {e}")
            continue
        yield i, src, img


def images_and_masks(image_args: list[str], masks_dir=None):
    """``(sources, images, stems, masks)`` for the commands that compare images with regions
    (``snapshot``, ``check``): masks is None without ``--masks``, else one per image."""
    sources = expand_images(image_args)
    images = read_images(sources)
    names = stems(sources)
    masks = None
    if masks_dir:
        from ..metrics.masks import read_masks

        masks = read_masks(masks_dir, names, [im.shape[:2] for im in images],
                           [Path(s).name for s in sources])
    return sources, images, names, masks


def summary(done: int, skipped: list, unit: str = "result") -> int:
    """One closing line on stderr when anything was skipped; the exit status: 0 when something
    was done, 2 when nothing was."""
    if skipped:
        warn(f"{done} {unit}(s) written, {len(skipped)} skipped (listed above)")
    if not done:
        why = skipped[0][1] if skipped else "no input"
        print(f"onnxviz: error: nothing to show: {why}", file=sys.stderr)
        return 2
    return 0


def add_output_args(parser, default_out: str | None = "onnxviz-out") -> None:
    """``--out``, ``--quiet``."""
    parser.add_argument("--out", "-o", default=default_out, metavar="DIR",
                        help=f"output folder (default {default_out})")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def add_render_args(parser) -> None:
    """``--cmap``, ``--alpha``, ``--threshold``, ``--top-percent``."""
    from ..viz import COLORMAPS

    g = parser.add_argument_group("rendering")
    g.add_argument("--cmap", default="jet", choices=COLORMAPS, help="colormap (default jet)")
    g.add_argument("--alpha", type=float, default=0.4,
                   help="heatmap weight in the overlay, 0..1 (default 0.4)")
    add_clip_arg(g)
    g.add_argument("--threshold", type=float, default=0.5,
                   help="mask: keep pixels whose normalised heat is >= this (default 0.5)")
    g.add_argument("--top-percent", type=float, default=None, metavar="P",
                   help="mask: keep the P%% hottest pixels instead of a threshold")


def add_clip_arg(group) -> None:
    group.add_argument("--clip", type=float, default=1.0, metavar="P",
                       help="saturate each map's top P%% of values in colour (default 1; 0 = off)")


def render_of(args) -> Render:
    """The rendering flags (``--cmap``, ``--alpha``, ``--clip``, ``--threshold``,
    ``--top-percent``, ``--npy``), checked, as a :class:`~onnxviz.results.Render`."""
    from ..errors import OptionError

    if not 0.0 <= args.clip < 100.0:
        raise OptionError(f"--clip must be in [0, 100), got {args.clip}")
    if not 0.0 <= args.alpha <= 1.0:
        raise OptionError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.top_percent is None and not 0.0 <= args.threshold <= 1.0:
        raise OptionError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.top_percent is not None and not 0.0 < args.top_percent <= 100.0:
        raise OptionError(f"--top-percent must be in (0, 100], got {args.top_percent}")
    return Render(cmap=args.cmap, alpha=args.alpha, clip=args.clip, threshold=args.threshold,
                  top_percent=args.top_percent, npy=getattr(args, "npy", False))


def show_progress(quiet: bool = False) -> bool:
    """Whether progress bars are shown: not with ``--quiet``, only when stderr is a terminal."""
    return not quiet and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress(total: int, desc: str, quiet: bool = False, unit: str = "it"):
    """A tqdm bar on stderr, hidden with ``--quiet`` or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show_progress(quiet), leave=False,
                file=sys.stderr)
