"""Inputs and outputs of the explaining subcommands: images, output folders, PNGs, progress bars."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from ..errors import ImageError, OnnxvizError

#: File name endings taken from a folder given as an image argument (the same files
#: :func:`onnxviz.read_image` reads when named one by one).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def expand_images(args: list[str], say=None) -> list[str]:
    """Image arguments -> image sources: files, ``skimage:NAME``, and the images inside folders.

    A folder contributes its files with an image suffix (sorted, not recursive); the other files
    it holds are counted in one line through ``say`` (default: a CLI warning). A folder with no
    image, or a missing path, is an error. Nothing is decoded here (see :func:`iter_images`).
    """
    from .common import warn

    say = say or warn
    out: list[str] = []
    for a in args:
        if a.startswith("skimage:") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", a):
            out.append(a)  # read_image explains what it does with a URL
            continue
        p = Path(a)
        if p.is_dir():
            entries = sorted(p.iterdir())
            found = [str(f) for f in entries if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
            other = [f.name for f in entries if str(f) not in set(found) and f.is_file()]
            if not found:
                raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {p}")
            if other:
                say(f"{p}: skipped {len(other)} file(s) without an image suffix "
                    f"({', '.join(other[:3])}{' ...' if len(other) > 3 else ''})")
            out.extend(found)
        elif p.exists():
            out.append(a)
        else:
            raise ImageError(f"image file not found: {a}")
    return out


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
    from .common import warn

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


def printable(text: str) -> str:
    """A file name as text any terminal and HTML page can show (undecodable bytes escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    from .common import warn

    if skipped:
        warn(f"{done} {unit}(s) written, {len(skipped)} skipped (listed above)")
    if not done:
        why = skipped[0][1] if skipped else "no input"
        print(f"onnxviz: error: nothing to show: {why}", file=sys.stderr)
        return 2
    return 0


def stems(sources: list[str]) -> list[str]:
    """A distinct, file-name-safe stem per source: ``cat``, then ``cat-2`` for a second ``cat.*``,
    never one that another source already has (``cat-2.png`` next to ``cat.png`` and
    ``cat.bmp`` gives ``cat-2`` and ``cat-3``)."""
    bases = []
    for s in sources:
        base = s.split(":", 1)[1] if s.startswith("skimage:") else Path(s).stem
        bases.append(re.sub(r"[^A-Za-z0-9._+-]+", "_", base).strip("._") or "image")
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


def check_render_args(args) -> None:
    from ..errors import OptionError

    if not 0.0 <= args.clip < 100.0:
        raise OptionError(f"--clip must be in [0, 100), got {args.clip}")
    if not 0.0 <= args.alpha <= 1.0:
        raise OptionError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.top_percent is None and not 0.0 <= args.threshold <= 1.0:
        raise OptionError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.top_percent is not None and not 0.0 < args.top_percent <= 100.0:
        raise OptionError(f"--top-percent must be in (0, 100], got {args.top_percent}")


def show_progress(quiet: bool = False) -> bool:
    """Whether progress bars are shown: not with ``--quiet``, only when stderr is a terminal."""
    return not quiet and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress(total: int, desc: str, quiet: bool = False, unit: str = "it"):
    """A tqdm bar on stderr, hidden with ``--quiet`` or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show_progress(quiet), leave=False,
                file=sys.stderr)


def write_explanation_pngs(folder: Path, stem: str, image: np.ndarray, e, args) -> dict[str, str]:
    """Write ``<stem>.<method>.{heatmap,overlay,mask}.png`` (+ superpixels for LIME); returns paths.

    The heatmap PNG is the coloured map at the model's input resolution; overlay and mask are at
    the original image's size.
    """
    from .. import viz

    from ..explainers.base import not_drawn

    if not_drawn(e):  # not finite or blank: reported by the explainer's warning; never drawn
        return {}
    base = f"{stem}.{e.method}"
    pics = {
        "heatmap": viz.apply_colormap(e.heatmap, args.cmap, clip_percent=args.clip),
        "overlay": viz.overlay(image, e.heatmap, alpha=args.alpha, cmap=args.cmap,
                               clip_percent=args.clip),
        "mask": viz.apply_mask(image, e.heatmap, threshold=args.threshold,
                               top_percent=args.top_percent),
    }
    if viz.superpixels_of(e) is not None and e.raw is not None:
        pics["superpixels"] = viz.method_picture(image, e, clip_percent=args.clip)
    paths = {}
    for kind, pic in pics.items():
        paths[kind] = str(viz.write_png(folder / f"{base}.{kind}.png", pic))
    if getattr(args, "npy", False):
        p = folder / f"{base}.heatmap.npy"
        try:
            np.save(p, np.asarray(e.heatmap, np.float32))
        except OSError as err:
            raise OnnxvizError(f"cannot write {p}: {err.strerror or err}") from None
        paths["heatmap_npy"] = str(p)
    return paths
