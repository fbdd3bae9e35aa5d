"""What a run reads: local files and folders, URIs, or a Ray Dataset, minus what is already done.

Local folders are listed here (as ``onnxviz explain`` lists them: files with an image suffix,
sorted, not recursive), so every image's key is known before the run: images whose every method is
already written are not read at all, and missing files become rows of the errors table. URIs
(``s3://``, ``gs://``, ``file://``, ...) are read by Ray Data's filesystems; a URI without an image
suffix is taken as a folder. A Ray Dataset is used as it is; its actors skip the done images.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..results import IMAGE_SUFFIXES, folder_images, shared_stems
from . import DistributedError


@dataclass
class Plan:
    """The images of a run.

    Attributes:
        read: ``read(ray, readers) -> ray.data.Dataset`` with ``path`` and ``bytes`` or ``image``
            columns, read by at most ``readers`` tasks at a time.
        expected: keys the actors should report back (None when a folder URI or a Dataset makes
            them unknown); those missing afterwards become errors rows.
        missing: local files that do not exist.
        skip: ``{image: methods already written}`` for the actors.
        blocks: read tasks, when known (an actor pool larger than this would sit idle).
        scheme: the URIs' scheme (Ray Data's paths come without it), or "".
        shared_stems: PNG stems several images share (None: unknown).
        empty: nothing left to read.
    """

    read: Callable
    expected: list[str] | None = None
    missing: list[str] = field(default_factory=list)
    blocks: int | None = None
    skip: dict[str, frozenset[str]] = field(default_factory=dict)
    scheme: str = ""
    shared_stems: frozenset[str] | None = None
    empty: bool = False


def plan_sources(source, done: dict[str, set[str]], methods: list[str], per_read: int = 16) -> Plan:
    """The :class:`Plan` for ``source`` (see :func:`onnxviz.distributed.explain_dataset`); a read
    task reads ``per_read`` listed files (one batch), not one file each."""
    import ray.data

    if isinstance(source, ray.data.Dataset):
        return _dataset_plan(source, done)
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    items = [os.fspath(i) for i in items]
    if not items:
        raise DistributedError("no images given")
    from ..errors import OptionError

    for i in items:
        if i.startswith("skimage:"):
            raise OptionError(f"{i}: scikit-image samples are for the local engine; give files")
    uris = [i for i in items if "://" in i]
    if uris and len(uris) != len(items):
        raise DistributedError("give local paths or URIs, not both (Ray Data reads one "
                               "filesystem per dataset)")
    if uris:
        return _uri_plan(uris, done, methods, per_read)
    return _local_plan(items, done, methods, per_read)


def _local_plan(items: list[str], done, methods, per_read: int) -> Plan:
    from ..errors import ImageError

    keys, missing = [], []
    for item in items:
        p = Path(item)
        if p.is_dir():
            keys += [os.path.abspath(f) for f in folder_images(p)[0]]
        elif p.exists():
            keys.append(os.path.abspath(p))
        else:
            missing.append(os.path.abspath(p))
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise ImageError(f"no image found: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}")
    missing = [k for k in dict.fromkeys(missing) if not _complete(done.get(k), methods)]
    todo = [k for k in keys if not _complete(done.get(k), methods)]
    return Plan(read=_binary_reader(todo, None, per_read), expected=todo, missing=missing,
                blocks=_blocks(todo, per_read),
                skip=_partial(todo, done), shared_stems=shared_stems(keys),
                empty=not todo)


def _uri_plan(uris: list[str], done, methods, per_read: int) -> Plan:
    schemes = {u.split("://", 1)[0].lower() for u in uris}
    if len(schemes) > 1:
        raise DistributedError(f"URIs of several filesystems ({', '.join(sorted(schemes))}); "
                               "Ray Data reads one per dataset")
    uris = list(dict.fromkeys(uris))
    files = [u for u in uris if u.lower().endswith(IMAGE_SUFFIXES)]
    folders = [u for u in uris if u not in files]
    todo = [u for u in files if not _complete(done.get(u), methods)] + folders
    exts = [s.lstrip(".") for s in IMAGE_SUFFIXES] if folders else None
    per_read = None if folders else per_read
    return Plan(read=_binary_reader(todo, exts, per_read), expected=None if folders else todo,
                blocks=_blocks(todo, per_read),
                skip={k: frozenset(v) for k, v in done.items()} if folders else _partial(todo, done),
                scheme=schemes.pop(), shared_stems=None if folders else shared_stems(files),
                empty=not todo)


def _dataset_plan(ds, done) -> Plan:
    names = set(ds.schema().names)
    if "path" not in names or not names & {"bytes", "image"}:
        raise DistributedError(
            f"a Ray Dataset needs a 'path' column (each image's key) and a 'bytes' or 'image' "
            f"column, as read_binary_files(..., include_paths=True) or read_images(..., "
            f"include_paths=True) make them; this one has: {', '.join(sorted(names))}")
    keep = ["path", "bytes" if "bytes" in names else "image"]
    return Plan(read=lambda ray, readers: ds.select_columns(keep),
                skip={k: frozenset(v) for k, v in done.items()})


def _binary_reader(paths: list[str], extensions, per_read: int | None):
    """Ray Data's reader of ``paths``. Its tasks ask for no CPU: they only move bytes (decoding is
    the actors' work), and an actor pool holding every CPU must not starve them; so their number
    at a time is capped instead (without a cap, Ray would start a process per read task)."""
    blocks = _blocks(paths, per_read)

    def read(ray, readers: int):
        return ray.data.read_binary_files(paths, include_paths=True, ignore_missing_paths=True,
                                          file_extensions=extensions, num_cpus=0,
                                          override_num_blocks=blocks, concurrency=readers)

    return read


def _blocks(paths, per_read: int | None) -> int | None:
    return None if per_read is None else max(1, -(-len(paths) // per_read))


def _complete(methods_done, methods) -> bool:
    return methods_done is not None and set(methods) <= methods_done


def _partial(keys, done) -> dict[str, frozenset[str]]:
    """The done methods of images that still have some to do (an interrupted batch)."""
    return {k: frozenset(done[k]) for k in keys if k in done}
