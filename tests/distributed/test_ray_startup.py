"""A local Ray cluster that times out while starting (simulated: ``ray.init`` raises what Ray 2.60
raises when its raylet misses its 30 s to register, on a loaded machine) is started again once,
with a longer wait for its GCS port; when that fails too, one line says what to do."""

from __future__ import annotations

import os

import pytest

from onnxviz.cli import main

#: What ``ray._private.node.Node`` raises when the raylet does not register in time.
TIMED_OUT = ("The current node timed out during startup. This could happen because some of the "
             "raylet failed to startup or the GCS has become overloaded.")


@pytest.fixture
def starts(monkeypatch):
    """``ray.init`` replaced: each call records its GCS wait and raises the next of ``outcomes``
    (None: starts). No cluster is started or stopped."""
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_gcs_server_port_wait_time_s", raising=False)
    calls, outcomes = [], []

    def init(**kwargs):
        calls.append(os.environ.get("RAY_gcs_server_port_wait_time_s"))
        error = outcomes.pop(0) if outcomes else None
        if error is not None:
            raise error

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    return calls, outcomes


def test_a_start_that_times_out_once_is_tried_again(starts):
    from onnxviz.distributed import cluster

    calls, outcomes = starts
    outcomes.append(Exception(TIMED_OUT))
    with cluster.connected(__import__("ray"), None, False):
        pass
    assert calls == [str(cluster.GCS_PORT_WAIT_S)] * 2
    assert "RAY_gcs_server_port_wait_time_s" not in os.environ  # given for the start only


def test_a_start_that_keeps_timing_out_says_what_to_do(starts, model_path, image_folder,
                                                       tmp_path, capsys):
    from onnxviz.distributed import cluster

    calls, outcomes = starts
    outcomes.extend(Exception(TIMED_OUT) for _ in range(cluster.START_TRIES))
    argv = ["explain", model_path, image_folder[1][0], "-m", "gradcam", "--engine", "ray",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("onnxviz: error: Ray's local cluster did not start in time")
    assert "retry" in err[0] and "--address" in err[0]
    assert len(calls) == cluster.START_TRIES


def test_joining_a_cluster_is_not_retried(starts):
    """An address that does not answer is a wrong address, said at once."""
    from onnxviz.distributed import DistributedError, cluster

    calls, outcomes = starts
    outcomes.append(ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:1"))
    with pytest.raises(DistributedError, match="cannot join the Ray cluster at 127.0.0.1:1"):
        with cluster.connected(__import__("ray"), "127.0.0.1:1", False):
            pass
    assert calls == [None]  # Ray's own wait when joining
