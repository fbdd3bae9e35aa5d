"""Without Ray installed (simulated: ``import ray`` blocked), ``--engine ray`` says in one line how
to install it and exits 2; the library raises the same error; the local engine is untouched."""

from __future__ import annotations

import sys

import pytest

from onnxviz.cli import main


@pytest.fixture
def no_ray(monkeypatch):
    for name in ("ray", "ray.data", "pyarrow"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def test_cli_says_how_to_install(no_ray, model_path, image_folder, tmp_path, capsys):
    argv = ["explain", model_path, image_folder[1][0], "-m", "gradcam", "--engine", "ray",
            "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("onnxviz: error:") and "pip install 'onnxviz[ray]'" in err[0]
    assert not any(tmp_path.iterdir())  # nothing written


def test_library_says_how_to_install(no_ray, model_path, image_folder, tmp_path):
    from onnxviz.distributed import DistributedError, explain_dataset

    with pytest.raises(DistributedError, match=r"pip install 'onnxviz\[ray\]'"):
        explain_dataset(model_path, image_folder[0], out=tmp_path)


def test_local_engine_needs_no_ray(no_ray, model_path, image_folder, tmp_path, capsys):
    argv = ["explain", model_path, image_folder[1][0], "-m", "gradcam", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert len(list(tmp_path.glob("*.png"))) == 3
