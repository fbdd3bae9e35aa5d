"""Ray's own log lines stay out of the terminal unless --verbose (issue 20, 4): an explain run
printed 83 lines of Ray's INFO logs, one of them an alarming error-level ``core_worker.cc`` line."""

from __future__ import annotations

import logging
import os
import sys

import pytest

pytest.importorskip("ray.data")

from onnxviz.distributed.cluster import quiet_ray_logs  # noqa: E402


def test_ray_core_lines_go_to_the_log_and_ours_to_the_terminal(tmp_path, capfd):
    import ray.data  # noqa: F401  (configures the ray.data logger and its console handler)

    console = [h for h in logging.getLogger("ray.data").handlers
               if "File" not in type(h).__name__]
    assert console
    before = [h.level for h in console]
    log = tmp_path / "ray.log"
    undo = quiet_ray_logs(log)
    try:
        os.write(2, b"[E core_worker.cc:2465] Actor ... max_restarts > 0\n")  # the C++ core
        print("onnxviz: warning: ours", file=sys.stderr, flush=True)
        assert all(h.level >= logging.WARNING for h in console)
        logging.getLogger("ray.data").info("Execution plan of Dataset ...")
    finally:
        undo()
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "core_worker" not in err and "Execution plan" not in err
    assert "onnxviz: warning: ours" in err and "after" in err
    assert "core_worker.cc" in log.read_text()
    assert [h.level for h in console] == before


def test_verbose_leaves_everything_alone(capfd):
    undo = quiet_ray_logs(None)
    os.write(2, b"core line\n")
    undo()
    assert "core line" in capfd.readouterr().err


def test_verbose_is_a_ray_flag(tmp_path, capsys):
    from onnxviz.cli import main

    code = main(["explain", "m.onnx", "x.png", "-m", "gradcam", "--verbose", "--out",
                 str(tmp_path)])
    assert code == 2 and "--verbose is an option of --engine ray" in capsys.readouterr().err
