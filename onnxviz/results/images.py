"""Which images a list of arguments names: files, folders of images, ``skimage:NAME``, URIs.

The same rules for the command line and the Ray engine: a folder gives its files with an image
suffix (sorted, not recursive), and a folder without one is an error. Nothing is decoded here.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ImageError

#: File name endings taken from a folder given as an image argument (the same files
#: :func:`onnxviz.read_image` reads when named one by one).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def folder_images(folder: Path) -> tuple[list[Path], list[str]]:
    """``(images, other)``: the files of ``folder`` with an image suffix (sorted) and the names of
    its other files. A folder with no image is an :class:`~onnxviz.errors.ImageError`."""
    entries = sorted(folder.iterdir())
    found = [f for f in entries if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    other = [f.name for f in entries if f not in set(found) and f.is_file()]
    if not found:
        raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return found, other


def expand_images(args: list[str], say) -> list[str]:
    """Image arguments -> image sources: files, ``skimage:NAME``, URLs and the images in folders.

    A folder contributes its image files (:func:`folder_images`); the other files it holds are
    counted in one line through ``say``. A folder with no image, or a missing path, is an error.
    """
    out: list[str] = []
    for a in args:
        if a.startswith("skimage:") or _URI.match(a):
            out.append(a)  # read_image explains what it does with a URL
            continue
        p = Path(a)
        if p.is_dir():
            found, other = folder_images(p)
            if other:
                say(f"{p}: skipped {len(other)} file(s) without an image suffix "
                    f"({', '.join(other[:3])}{' ...' if len(other) > 3 else ''})")
            out.extend(str(f) for f in found)
        elif p.exists():
            out.append(a)
        else:
            raise ImageError(f"image file not found: {a}")
    return out


def printable(text: str) -> str:
    """A file name as text any terminal and HTML page can show (undecodable bytes escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
