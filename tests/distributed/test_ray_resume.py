"""A rerun skips every row already written, remakes only what is missing, and never writes a row
twice; an output folder of another run is refused."""

from __future__ import annotations

import pytest

from onnxviz.distributed import Render
from tests.distributed.helpers import N_IMAGES, keys_of

METHODS = ["gradcam", "saliency"]


def run(model_path, source, out, **kw):
    from onnxviz.distributed import explain_dataset

    kw.setdefault("methods", METHODS)
    return explain_dataset(model_path, source, out=out, workers=2, batch_size=20,
                           progress=False, **kw)


def test_resume(ray_cluster, model_path, image_folder, tmp_path):
    from onnxviz.distributed import read_results

    folder, paths = image_folder
    out = tmp_path / "run"
    first = run(model_path, paths[:100], out, render=None)
    assert (first.explained, first.already) == (100 * len(METHODS), 0)
    parts = sorted((out / "explanations").glob("part-*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in parts}

    # the whole folder: the first 100 images are not read again, their parts not rewritten
    second = run(model_path, folder, out, render=None)
    assert (second.explained, second.already, second.errors) == \
        ((N_IMAGES - 100) * len(METHODS), 100 * len(METHODS), 0)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    table = read_results(out)
    keys = keys_of(table)
    assert len(keys) == len(set(keys)) == N_IMAGES * len(METHODS)

    # parts lost (a disk restored from an old backup, a killed run) and a writer's leftover
    # temporary file: only the lost rows are made again
    lost = sorted((out / "explanations").glob("part-*.parquet"))[:3]
    n_lost = sum(len(keys_of(read_part(p))) for p in lost)
    for p in lost:
        p.unlink()
    (out / "explanations" / ".tmp-123-part-x.parquet").write_bytes(b"half a file")
    third = run(model_path, folder, out, render=None)
    assert (third.explained, third.already) == (n_lost, N_IMAGES * len(METHODS) - n_lost)
    assert not list((out / "explanations").glob(".tmp-*"))
    keys = keys_of(read_results(out))
    assert len(keys) == len(set(keys)) == N_IMAGES * len(METHODS)

    # nothing left: no Ray work at all
    fourth = run(model_path, folder, out, render=None)
    assert (fourth.explained, fourth.errors, fourth.workers) == (0, 0, {})

    # the same folder for another model, methods, options, target or drawing: refused
    from onnxviz.distributed import DistributedError

    for change in ({"methods": ["gradcam"]}, {"target": 1}, {"render": Render()},
                   {"options": {"gradcam": {"layer": "features.relu2"}}},
                   {"preprocess": "raw"}):
        kw = {"render": None, **change}
        with pytest.raises(DistributedError, match="another run"):
            run(model_path, folder, out, **kw)
    assert len(keys_of(read_results(out))) == N_IMAGES * len(METHODS)


def read_part(path):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["image", "method"])
