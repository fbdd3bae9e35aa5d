"""Inputs and outputs of the explaining subcommands: images, output folders, PNGs, progress bars."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from ..errors import ImageError, OnnxvizError

#: File name endings taken from a folder given as an image argument.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def expand_images(args: list[str]) -> list[str]:
    """Image arguments -> image sources: files, ``skimage:NAME``, and the images inside folders.

    A folder contributes its files with an image suffix (sorted, not recursive); a folder with none
    is an error, as is a missing path.
    """
    out: list[str] = []
    for a in args:
        if a.startswith("skimage:"):
            out.append(a)
            continue
        p = Path(a)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {p}")
            out.extend(found)
        elif p.exists():
            out.append(a)
        else:
            raise ImageError(f"image file not found: {a}")
    return out


def read_images(sources: list[str]) -> list[np.ndarray]:
    """Read every source with :func:`onnxviz.read_image` (the first bad one raises)."""
    from ..imageio import read_image

    return [read_image(s) for s in sources]


def stems(sources: list[str]) -> list[str]:
    """A distinct, file-name-safe stem per source (``cat``, ``cat-2`` for a second ``cat.png``)."""
    seen: dict[str, int] = {}
    out = []
    for s in sources:
        base = s.split(":", 1)[1] if s.startswith("skimage:") else Path(s).stem
        base = re.sub(r"[^A-Za-z0-9._+-]+", "_", base).strip("._") or "image"
        n = seen.get(base, 0) + 1
        seen[base] = n
        out.append(base if n == 1 else f"{base}-{n}")
    return out


def out_dir(path) -> Path:
    """Create the output folder (and parents); a file in the way or no permission: a user error."""
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
