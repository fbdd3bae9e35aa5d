"""Class names: from an argument (list or file), the metadata, or ImageNet-1k for 1000 classes."""

from __future__ import annotations

import json
import os
import warnings
from functools import lru_cache
from importlib import resources

from ..errors import OptionError

METADATA_KEY = "onnxviz.labels"


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (see ``onnxviz/data/README.md``)."""
    text = resources.files("onnxviz").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    assert len(names) == 1000, len(names)
    return names


def read_labels(path) -> list[str]:
    """Labels from a text file, one per line (blank and ``#`` lines skipped), or a JSON list."""
    from .. import limits

    path = limits.regular_file(path, "labels file", OptionError, max_bytes=limits.MAX_TEXT_BYTES)
    try:
        text = path.read_text("utf-8")
    except OSError as e:
        raise OptionError(f"cannot read labels file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise OptionError(f"labels file {path} is not UTF-8 text (byte {e.start}: "
                          f"{e.object[e.start:e.start + 1]!r}); save it as UTF-8") from None
    if text.lstrip().startswith("["):
        try:
            return _check_list(json.loads(text), str(path))
        except json.JSONDecodeError as e:
            raise OptionError(f"labels file {path} is not valid JSON: {e}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _check_list(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise OptionError(f"{what}: labels must be a list of strings")
    return [str(v) for v in value]


def resolve(proto, num_classes: int, override=None) -> tuple[list[str] | None, str]:
    """The model's labels and where they came from.

    Args:
        proto: the ONNX model (for ``onnxviz.labels`` metadata).
        num_classes: size of the score output; labels must match it.
        override: a list of names, a path to a labels file, ``"imagenet"``, or ``None``.

    Returns:
        (labels or None, source) with source one of ``argument``, ``file``, ``metadata``,
        ``imagenet`` or ``none``.
    """
    if override is not None:
        if isinstance(override, str) and override == "imagenet":
            labels, source = list(imagenet_labels()), "imagenet"
        elif isinstance(override, str) and override.lstrip().startswith("["):  # JSON list text
            try:
                labels = _check_list(json.loads(override), "labels")
            except json.JSONDecodeError as e:
                raise OptionError(f"labels: {override[:60]!r} is not a JSON list: {e}") from None
            source = "argument"
        elif isinstance(override, (str, os.PathLike)):
            labels, source = read_labels(override), "file"
        else:
            labels, source = _check_list(list(override), "labels"), "argument"
        if len(labels) != num_classes:
            raise OptionError(f"{len(labels)} labels given but the model has {num_classes} classes")
        return labels, source
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY in meta:
        try:
            labels = _check_list(json.loads(meta[METADATA_KEY]), METADATA_KEY)
        except (json.JSONDecodeError, OptionError) as e:
            warnings.warn(f"ignoring bad {METADATA_KEY} metadata ({e})", stacklevel=4)
        else:
            if len(labels) == num_classes:
                return labels, "metadata"
            warnings.warn(f"ignoring {METADATA_KEY} metadata: {len(labels)} labels for "
                          f"{num_classes} classes", stacklevel=4)
    if num_classes == 1000:
        return list(imagenet_labels()), "imagenet"
    return None, "none"
