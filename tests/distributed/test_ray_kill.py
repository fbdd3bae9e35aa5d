"""An actor killed (SIGKILL) mid-run: the job finishes, nothing is lost, nothing written twice."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil

from tests.distributed.helpers import keys_of

N = 80
#: Batches of two images, 26 forward passes each: the kill lands with most batches to do.
OPTIONS = {"occlusion": {"patch": 16, "stride": 8}}


def actor_processes() -> list[psutil.Process]:
    """This test session's explain actors (descendants of this process: the cluster it started)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "MapBatches(ExplainBatch)" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_actor_killed_mid_run(ray_cluster, model_path, image_folder, tmp_path):
    from onnxviz.distributed import explain_dataset, read_errors, read_results

    out = tmp_path / "run"
    parts = out / "explanations"
    result = {}

    def job():
        result["summary"] = explain_dataset(
            model_path, image_folder[1][:N], out=out, methods=["occlusion"], options=OPTIONS,
            workers=2, batch_size=2, progress=False, render=None)

    thread = threading.Thread(target=job)
    thread.start()
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.parquet"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    victims = actor_processes()
    assert victims and thread.is_alive(), "the run ended before an actor could be killed"
    written_before = len(list(parts.glob("part-*.parquet")))
    os.kill(victims[0].pid, signal.SIGKILL)
    # what the kill leaves when it lands inside a write (it does in some runs): the victim's
    # temporary file, which the run removes when it ends
    (parts / f".tmp-{victims[0].pid}-part-killed.parquet").write_bytes(b"PAR1 cut short")
    thread.join(timeout=240)
    assert not thread.is_alive()

    s = result["summary"]
    assert written_before < N // 4  # the kill landed with most of the work still to do
    assert not victims[0].is_running() or victims[0].status() == psutil.STATUS_ZOMBIE
    assert read_errors(out) is None and s.errors == 0
    keys = keys_of(read_results(out))
    assert len(keys) == len(set(keys)) == N  # nothing lost, nothing twice
    assert s.explained == N
    assert not list(parts.glob(".tmp-*"))
