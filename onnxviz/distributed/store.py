"""The output folder of a Ray run: Parquet part files, PNGs, a manifest; what is already done.

Layout of ``out``::

    manifest.json                    what produced the rows (model hash, methods, options, ...)
    explanations/part-<key>.parquet  one row per image x method (see :func:`explanation_table`)
    errors/part-<key>.parquet        one row per image x method that could not be explained
    png/<stem>.<method>.{heatmap,overlay,mask}.png
    summary.json                     the counts of the last run

A part file holds the rows of one batch. Its name is a hash of the run's configuration and of the
batch's image keys, and it is written to a temporary name and renamed, so a task that Ray retries
after its actor died rewrites the same file with the same rows: no row is ever written twice, and a
part is either whole or absent. The ``(image, method)`` pairs present in either table are done; a
rerun skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from . import DistributedError

EXPLANATIONS = "explanations"
ERRORS = "errors"
PNG = "png"
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
_TMP = ".tmp-"

#: Columns of the errors table.
ERROR_COLUMNS = ("image", "method", "stage", "error", "message")


def part_name(config_key: str, keys) -> str:
    """``part-<20 hex>.parquet``, from the configuration and the batch's image keys."""
    h = hashlib.sha256(config_key.encode())
    for k in sorted(set(keys)):
        h.update(b"\0" + k.encode("utf-8", "surrogateescape"))
    return f"part-{h.hexdigest()[:20]}.parquet"


def explanation_table(records: list, heatmaps: list[np.ndarray]):
    """The explanations table of one batch.

    Args:
        records: one :class:`onnxviz.results.Record` per explanation (the fields of
            ``onnxviz explain --json``: image, method, target, label, score, score_kind, box,
            region, params, outputs, timings, extras).
        heatmaps: the float32 (H, W) maps, in the same order.

    Returns:
        A ``pyarrow.Table``: ``image``, ``method``, ``label`` (string), ``target`` (int64), ``score``
        (float64, the float32 score exactly), ``score_kind`` (``logit``, ``probability``,
        ``confidence`` for a box, ``logit sum`` for a region), ``box`` (a detector's box,
        ``[x0, y0, x1, y1]`` in the photo's pixels; null otherwise), ``region`` (a segmenter's
        region as JSON text; null otherwise), ``heatmap`` (``arrow.fixed_shape_tensor`` of float32
        [H, W]), ``params`` and ``extras`` (JSON text, NaN as null), ``timings`` (map of seconds) and
        ``outputs`` (map of PNG paths).
    """
    import pyarrow as pa

    from ..results import dumps

    records = [r.to_dict() for r in records]
    maps = np.stack([np.asarray(h, np.float32) for h in heatmaps])
    return pa.table({
        "image": pa.array([r["image"] for r in records], pa.string()),
        "method": pa.array([r["method"] for r in records], pa.string()),
        "target": pa.array([r["target"] for r in records], pa.int64()),
        "label": pa.array([r["label"] for r in records], pa.string()),
        "score": pa.array([r["score"] for r in records], pa.float64()),
        "score_kind": pa.array([r["score_kind"] for r in records], pa.string()),
        "box": pa.array([r["box"] for r in records], pa.list_(pa.float64())),
        "region": pa.array([None if r["region"] is None else dumps(r["region"], sort_keys=True)
                            for r in records], pa.string()),
        "heatmap": pa.FixedShapeTensorArray.from_numpy_ndarray(maps),
        "params": pa.array([dumps(r["params"], sort_keys=True) for r in records], pa.string()),
        "timings": pa.array([list(r["timings"].items()) for r in records],
                            pa.map_(pa.string(), pa.float64())),
        "extras": pa.array([dumps(r["extras"], sort_keys=True) for r in records], pa.string()),
        "outputs": pa.array([list(r["outputs"].items()) for r in records],
                            pa.map_(pa.string(), pa.string())),
    })


def error_table(rows: list[dict]):
    """The errors table of one batch: :data:`ERROR_COLUMNS`, all strings."""
    import pyarrow as pa

    return pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in ERROR_COLUMNS})


def error_row(image: str, method: str, stage: str, err: BaseException | str) -> dict:
    """One errors-table row; ``stage`` is ``read``, ``decode`` or ``explain``."""
    if isinstance(err, BaseException):
        text = str(err).strip()
        kind, message = type(err).__name__, text.splitlines()[0][:500] if text else ""
    else:
        kind, message = "NotRead", err
    return {"image": image, "method": method, "stage": stage, "error": kind, "message": message}


def write_part(folder: Path, name: str, table) -> Path:
    """Write ``table`` as ``folder/name`` atomically (temporary file, then rename)."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / f"{_TMP}{os.getpid()}-{name}"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def parts(folder: Path) -> list[Path]:
    """The finished part files of a table folder, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("part-*.parquet") if p.is_file())


def done_keys(out: Path) -> dict[str, set[str]]:
    """``{image: {methods}}`` present in the explanations or errors table of ``out``.

    A part that cannot be read (a disk that filled up, a copy cut short) is removed, so that its
    rows are made again.
    """
    import pyarrow.parquet as pq

    done: dict[str, set[str]] = {}
    for table in (EXPLANATIONS, ERRORS):
        for p in parts(out / table):
            try:
                t = pq.read_table(p, columns=["image", "method"])
            except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
                import warnings

                warnings.warn(f"removing unreadable part {p} ({type(e).__name__}); its rows "
                              "will be made again", stacklevel=2)
                p.unlink(missing_ok=True)
                continue
            for image, method in zip(t["image"].to_pylist(), t["method"].to_pylist()):
                done.setdefault(image, set()).add(method)
    return done


def clean(out: Path) -> None:
    """Remove temporary files left by writers that were killed."""
    for table in (EXPLANATIONS, ERRORS):
        folder = out / table
        if folder.is_dir():
            for p in folder.glob(f"{_TMP}*"):
                p.unlink(missing_ok=True)


def drop_errors(out: Path) -> int:
    """Remove the errors table (``--retry-errors``); returns the number of parts removed."""
    gone = parts(out / ERRORS)
    for p in gone:
        p.unlink()
    return len(gone)


def check_manifest(out: Path, manifest: dict) -> str:
    """Write ``out/manifest.json``, or check that an existing one describes the same run.

    Returns:
        The configuration key (hash of the manifest without the onnxviz version).

    Raises:
        DistributedError: ``out`` holds rows of another model, methods, options or target.
    """
    path = out / MANIFEST
    same = {k: v for k, v in manifest.items() if k != "onnxviz"}
    key = hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            raise DistributedError(f"{path} is not readable JSON; give another --out") from None
        differ = sorted(k for k in set(same) | set(old) - {"onnxviz"}
                        if old.get(k) != same.get(k))
        if differ:
            raise DistributedError(
                f"{out} holds the results of another run ({', '.join(differ)} differ); give "
                "another --out, or remove it to start over")
        return key
    tmp = out / f"{_TMP}{MANIFEST}"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return key


def read_table(out, table: str = EXPLANATIONS):
    """Every part of one table of ``out`` as one ``pyarrow.Table`` (None when there is none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = parts(Path(out) / table)
    if not found:
        return None
    return pa.concat_tables([pq.read_table(p) for p in found])


def read_results(out):
    """The explanations of a run: one row per image x method (``pyarrow.Table``, or None).

    ``table["heatmap"].combine_chunks().to_numpy_ndarray()`` gives the maps as (rows, H, W).
    """
    return read_table(out, EXPLANATIONS)


def read_errors(out):
    """The errors table of a run: image, method, stage, error, message (or None)."""
    return read_table(out, ERRORS)
