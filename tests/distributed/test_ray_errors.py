"""Bad images become rows of the errors table (one per image x method), never a failed job; a
rerun skips them; ``retry_errors`` tries them again without duplicating a row."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.distributed.helpers import keys_of

METHODS = ["gradcam", "occlusion"]
OPTIONS = {"occlusion": {"patch": 16, "stride": 16}}


def test_bad_images(ray_cluster, model_path, image_folder, tmp_path):
    from onnxviz.distributed import explain_dataset, read_errors, read_results

    folder = tmp_path / "mixed"
    folder.mkdir()
    good = image_folder[1][:20]
    for p in good:
        shutil.copy(p, folder)
    png = Path(good[0]).read_bytes()
    bad = {"text.png": b"this is not an image\n", "empty.png": b"",
           "truncated.png": png[: len(png) // 3], "garbage.jpg": b"\xff\xd8\xff" + bytes(500)}
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    missing = str(tmp_path / "nowhere.png")
    sources = [str(folder), missing]

    def run(**kw):
        return explain_dataset(model_path, sources, out=tmp_path / "out", methods=METHODS,
                               options=OPTIONS, workers=2, batch_size=6, progress=False, **kw)

    s = run()
    n_bad = (len(bad) + 1) * len(METHODS)
    assert (s.explained, s.errors) == (len(good) * len(METHODS), n_bad)
    errors = read_errors(tmp_path / "out")
    rows = errors.to_pylist()
    by_image = {}
    for r in rows:
        by_image.setdefault(r["image"].rsplit("/", 1)[1], set()).add((r["method"], r["stage"]))
    assert by_image["nowhere.png"] == {(m, "read") for m in METHODS}
    for name in bad:
        assert by_image[name] == {(m, "decode") for m in METHODS}, name
    assert all(r["error"] and r["message"] for r in rows)
    assert len(set(keys_of(errors))) == len(rows) == n_bad

    again = run()  # nothing to do: the bad images are rows already
    assert (again.explained, again.errors, again.already) == (0, 0, s.explained + s.errors)

    retried = run(retry_errors=True)  # tried again, still bad: the same rows, once each
    assert (retried.explained, retried.errors) == (0, n_bad)
    errors = read_errors(tmp_path / "out")
    assert sorted(keys_of(errors)) == sorted(set(keys_of(errors)))
    assert errors.num_rows == n_bad
    results = read_results(tmp_path / "out")
    assert len(set(keys_of(results))) == results.num_rows == len(good) * len(METHODS)


def test_output_folder_not_shared(ray_cluster, model_path, image_folder, tmp_path):
    """An actor that cannot see the driver's output folder (a cluster without shared storage)
    stops the job at once with the reason, instead of writing results nobody will find."""
    import ray

    from onnxviz.distributed import DistributedError
    from onnxviz.distributed.job import _cause, _pipeline
    from onnxviz.distributed.sources import plan_sources
    from onnxviz.distributed.worker import Job
    from onnxviz.model import loading

    data = loading.read(model_path).SerializeToString()
    plan = plan_sources(image_folder[1][:4], {}, ["gradcam"], 4)
    job = Job(methods=("gradcam",), options={"gradcam": {}}, target=None, load={}, threads=None,
              out=str(tmp_path / "elsewhere"), config_key="k", render=None)
    ds = _pipeline(ray, plan, job, data, 1, None, 4)
    try:
        ds.take_all()
    except ray.exceptions.RayError as e:
        message = _cause(e)
    else:
        raise AssertionError("the job ran without its output folder")
    assert message.startswith(DistributedError.__name__)
    assert "is not visible on node" in message and "every node mounts" in message


def test_uris(ray_cluster, model_path, image_folder, tmp_path):
    """URIs are read by Ray Data's filesystems and keep their scheme in the tables; a listed URI
    that is not there becomes a ``read`` row once the run is over."""
    from onnxviz.distributed import explain_dataset, read_errors, read_results

    uris = ["file://" + p for p in image_folder[1][:4]]
    gone = "file://" + str(tmp_path / "gone.png")
    s = explain_dataset(model_path, [*uris, gone], out=tmp_path / "out", methods="gradcam",
                        workers=1, progress=False, render=None)
    assert (s.explained, s.errors) == (4, 1)
    assert sorted(read_results(tmp_path / "out")["image"].to_pylist()) == sorted(uris)
    (row,) = read_errors(tmp_path / "out").to_pylist()
    assert (row["image"], row["stage"]) == (gone, "read")
