"""``onnxviz explain ... --engine ray --address ADDR`` as a pipeline runs it: another process,
joining the test's cluster; bad flags are one line and exit 2 before any Ray work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from onnxviz.cli import main


def onnxviz(*argv, timeout=240):
    return subprocess.run([sys.executable, "-m", "onnxviz.cli", *map(str, argv)],
                          check=False, capture_output=True, text=True, timeout=timeout)


def test_cli_joins_cluster(ray_cluster, model_path, image_folder, tmp_path):
    from onnxviz.distributed import read_results

    paths = image_folder[1][:30]
    out = tmp_path / "out"
    argv = ["explain", model_path, *paths, "-m", "gradcam,occlusion", "--patch", "16",
            "--stride", "16", "--engine", "ray", "--address", ray_cluster, "--workers", "1",
            "--out", out, "--quiet"]
    r = onnxviz(*argv, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["explained"], summary["errors"], summary["already"]) == (60, 0, 0)
    assert summary["methods"] == ["gradcam", "occlusion"] and len(summary["workers"]) == 1
    assert json.loads((out / "summary.json").read_text())["explained"] == 60
    table = read_results(out)
    assert table.num_rows == 60
    occ = [json.loads(p) for p, m in zip(table["params"].to_pylist(),
                                         table["method"].to_pylist()) if m == "occlusion"]
    assert all(p["patch"] == 16 and p["stride"] == 16 for p in occ)
    # a constant map (occlusion of a probability saturated at 1.0 in float32: every drop 0) is
    # flagged and not drawn (issue 20); every other map has its overlay
    extras = [json.loads(x) for x in table["extras"].to_pylist()]
    flagged = [m for x, m in zip(extras, table["method"].to_pylist())
               if x.get("blank") or x.get("nonfinite")]
    assert set(flagged) <= {"occlusion"}
    assert len(list((out / "png").glob("*.overlay.png"))) == 60 - len(flagged)
    drawn = [bool(dict(o)) for o in table["outputs"].to_pylist()]
    assert drawn == [not (x.get("blank") or x.get("nonfinite")) for x in extras]

    again = onnxviz(*argv)  # the text summary; everything already there
    assert again.returncode == 0, again.stderr
    assert "0 rows explained" in again.stdout and "60 already there" in again.stdout

    other = onnxviz(*argv, "--no-png")  # the same folder, drawn otherwise: another run
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1].startswith("onnxviz: error: ")
    assert "another run (render differ)" in other.stderr


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "--workers must be >= 1"),
    (["--workers", "2", "--engine", "local"], "--workers is an option of --engine ray"),
    (["--address", "auto", "--engine", "local"], "--address is an option of --engine ray"),
    (["--no-png", "--engine", "local"], "--no-png is an option of --engine ray"),
    (["-m", "nope"], "unknown method"),
])
def test_cli_bad_flags(model_path, image_folder, tmp_path, capsys, extra, message):
    argv = ["explain", model_path, image_folder[1][0], "-m", "gradcam", "--engine", "ray",
            "--out", str(tmp_path), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("onnxviz: error:") and message in err[0]


def test_cli_bad_model_before_ray(image_folder, tmp_path, capsys):
    """A model that does not load is the usual one-line error, before any cluster is joined."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    argv = ["explain", str(bad), image_folder[1][0], "-m", "gradcam", "--engine", "ray",
            "--address", "127.0.0.1:1", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a valid ONNX model" in err[0]


def test_cli_npy_with_ray(ray_cluster, model_path, image_folder, tmp_path):
    """--npy writes each heatmap beside its PNGs, as the local engine does (it wrote none)."""
    import numpy as np

    from onnxviz.distributed import read_results

    out = tmp_path / "npy"
    r = onnxviz("explain", model_path, *image_folder[1][:2], "-m", "gradcam", "--engine", "ray",
                "--address", ray_cluster, "--workers", "1", "--out", out, "--quiet", "--npy")
    assert r.returncode == 0, r.stderr
    table = read_results(out)
    assert table.num_rows == 2
    for outputs, heat in zip(table["outputs"].to_pylist(), table["heatmap"].to_pylist()):
        path = dict(outputs)["heatmap_npy"]
        assert path.endswith(".gradcam.heatmap.npy")
        np.testing.assert_array_equal(np.load(path).ravel(), np.asarray(heat, np.float32).ravel())
