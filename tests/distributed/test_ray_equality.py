"""The Ray engine gives the single-process results bit for bit: heatmaps, scores, targets, labels,
for deterministic methods and for seeded random ones, from files or from a Ray Dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnxviz as ov
from tests.distributed.helpers import keys_of

#: Every family: a CAM, a gradient, occlusion, and the seeded random methods (RISE, LIME), with
#: light settings.
OPTIONS = {
    "gradcam": {},
    "integrated_gradients": {"steps": 8},
    "occlusion": {"patch": 16, "stride": 8},
    "rise": {"num_masks": 64, "seed": 7},
    "lime": {"num_samples": 48, "seed": 3},
}
N = 16


@pytest.fixture(scope="module")
def reference(model_path, image_folder):
    """``ov.explain`` in this process, one image at a time, by (path, method)."""
    m = ov.load(model_path)
    paths = image_folder[1][:N]
    return {(p, name): ov.explain(m, p, method=name, **opts)
            for p in paths for name, opts in OPTIONS.items()}


def check_equal(table, reference):
    rows = table.to_pylist()
    assert len(rows) == len(reference)
    maps = table["heatmap"].combine_chunks().to_numpy_ndarray()
    for row, heat in zip(rows, maps):
        e = reference[(row["image"], row["method"])]
        assert heat.dtype == np.float32 and heat.shape == e.heatmap.shape
        assert np.array_equal(heat, e.heatmap), (row["image"], row["method"])
        assert row["score"] == float(e.score)
        assert (row["target"], row["label"]) == (e.target, e.label)
        assert json.loads(row["params"]) == json.loads(json.dumps(e.to_dict()["params"]))


def test_files_equal_single_process(ray_cluster, model_path, image_folder, reference, tmp_path):
    from onnxviz.distributed import explain_dataset, read_errors, read_results

    paths = image_folder[1][:N]
    s = explain_dataset(model_path, paths, out=tmp_path / "run", methods=list(OPTIONS),
                        options=OPTIONS, workers=2, batch_size=5, progress=False)
    assert (s.explained, s.errors, s.already) == (N * len(OPTIONS), 0, 0)
    assert read_errors(tmp_path / "run") is None
    table = read_results(tmp_path / "run")
    assert len(set(keys_of(table))) == table.num_rows
    check_equal(table, reference)
    row = table.slice(0, 1).to_pylist()[0]
    for kind, png in row["outputs"]:  # the PNGs are there, named as the local engine names them
        assert png.endswith(f"{row['method']}.{kind}.png")
        assert (tmp_path / "run" / "png" / png.rsplit("/", 1)[1]).is_file()


def test_ray_dataset_input(ray_cluster, model_path, image_folder, reference, tmp_path):
    """A Ray Dataset of encoded files (read_binary_files) or of decoded arrays (an ``image``
    column) gives the same rows; its keys are its ``path`` column."""
    import ray

    from onnxviz.distributed import explain_dataset, read_results

    paths = image_folder[1][:N]
    names = ["gradcam", "rise"]
    ref = {k: v for k, v in reference.items() if k[1] in names}
    opts = {n: OPTIONS[n] for n in names}
    binary = ray.data.read_binary_files(paths, include_paths=True)
    explain_dataset(model_path, binary, out=tmp_path / "bin", methods=names, options=opts,
                    workers=1, progress=False, render=None)
    check_equal(read_results(tmp_path / "bin"), ref)
    assert not (tmp_path / "bin" / "png").exists()  # render=None: the tables only
    assert not any(dict(o) for o in read_results(tmp_path / "bin")["outputs"].to_pylist())
    arrays = ray.data.from_items([{"path": p, "image": ov.read_image(p)} for p in paths])
    explain_dataset(model_path, arrays, out=tmp_path / "arr", methods=names, options=opts,
                    workers=1, progress=False, render=None)
    check_equal(read_results(tmp_path / "arr"), ref)
