"""Joining or starting the Ray cluster of a run, and keeping Ray's own log lines out of the
terminal (:func:`connected`): a local cluster gets the time a loaded machine needs, a start-up
that times out is tried once more after stopping what it left, and what still fails is one line.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from . import DistributedError


@contextmanager
def connected(ray, address, progress: bool, log: Path | None = None):
    """Join the cluster at ``address`` (or the one already joined, or start a local one); with a
    ``log`` path, Ray's own log lines go there rather than to the terminal."""
    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars
    ctx.enable_progress_bars = progress
    verbose = log is None
    quiet = quiet_ray_logs(log)
    started = False
    try:
        if not ray.is_initialized():
            _init(ray, address, verbose)
            started = True
        yield
    finally:
        ctx.enable_progress_bars = before
        if started:
            ray.shutdown()
        quiet()


def quiet_ray_logs(log: Path | None):
    """With a ``log`` file, Ray's own lines stay out of the terminal: Ray Data's console lines
    below WARNING (its execution plan and, when stderr is not a terminal, a progress report every
    few seconds) are dropped, and what Ray's C++ core writes to the process's stderr (its log
    level, the actor-restart notice) goes to ``log``; Python's own messages (onnxviz's warnings,
    the progress bars) still reach the terminal. Returns the undo."""
    import io
    import logging
    import sys

    if log is None:
        return lambda: None
    handlers = [h for h in logging.getLogger("ray.data").handlers
                if not isinstance(h, logging.FileHandler) and "File" not in type(h).__name__]
    levels = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(logging.WARNING)
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        sink = os.open(str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:  # no file descriptors to juggle (an embedded interpreter): the levels only
        saved = None
    before = sys.stderr
    if saved is not None:
        os.dup2(sink, 2)
        os.close(sink)
        if getattr(before, "fileno", None) is not None and _fd(before) == 2:
            sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb", buffering=0),
                                          write_through=True, errors="backslashreplace")

    def undo():
        for h, level in zip(handlers, levels):
            h.setLevel(level)
        if saved is not None:
            if sys.stderr is not before:
                sys.stderr.flush()
                sys.stderr = before
            os.dup2(saved, 2)
            os.close(saved)
    return undo


def _fd(stream) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None


#: Tries at starting a local cluster. Ray gives its raylet a fixed 30 s to register (Ray 2.60:
#: ``raylet_start_wait_time_s``, not a setting); on a loaded machine it can miss them, and a
#: second try a moment later passes.
START_TRIES = 2
#: Seconds Ray waits for the port of a local cluster's GCS server, unless the environment sets
#: ``RAY_gcs_server_port_wait_time_s`` (Ray's default: 30).
GCS_PORT_WAIT_S = 120


def _init(ray, address, verbose: bool) -> None:
    """``ray.init``: join ``address``, or start a local cluster, given the time a loaded machine
    needs; a start-up that still times out says what to do in one line. ``verbose``: Ray's
    warnings and the workers' output reach the terminal (else only its errors)."""
    local = address is None and not os.environ.get("RAY_ADDRESS")
    kwargs = {"include_dashboard": False} if local else {}
    for attempt in range(1, (START_TRIES if local else 1) + 1):
        spawned = _children()
        try:
            with _env("RAY_gcs_server_port_wait_time_s", str(GCS_PORT_WAIT_S) if local else None):
                ray.init(address=address, logging_level="warning" if verbose else "error",
                         log_to_driver=verbose, **kwargs)
            return
        except (ConnectionError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DistributedError(f"cannot join the Ray cluster at {address or 'RAY_ADDRESS'}"
                                   f": {first}") from None
        except Exception as e:  # Ray raises a bare Exception when its start-up times out
            if not isinstance(e, TimeoutError) and "timed out" not in str(e):
                raise
            _stop_new(spawned)  # what the failed start left running
            if attempt < START_TRIES and local:
                continue
            where = ("Ray's local cluster" if local
                     else f"the Ray cluster at {address or 'RAY_ADDRESS'}")
            raise DistributedError(
                f"{where} did not start in time ({attempt} tries; the machine may be busy): retry "
                "in a minute, or start a cluster with `ray start --head` and pass its address "
                "with --address") from None


def _children() -> set:
    """PIDs of this process's descendants."""
    try:
        import psutil  # Ray's dependency

        return {p.pid for p in psutil.Process().children(recursive=True)}
    except Exception:  # noqa: BLE001 - cleaning up is best effort
        return set()


def _stop_new(before: set) -> None:
    """Kill the Ray processes among the descendants started since ``before`` (what a failed
    ``ray.init`` left: its GCS server, raylet and agents)."""
    try:
        import psutil

        for p in psutil.Process().children(recursive=True):
            try:
                if p.pid not in before and "ray" in " ".join(p.cmdline()).lower():
                    p.kill()
            except psutil.Error:  # already gone
                pass
    except Exception:  # noqa: BLE001 - cleaning up is best effort
        pass


@contextmanager
def _env(name: str, value: str | None):
    """``os.environ[name] = value`` while the block runs, unless it is set already."""
    if value is None or name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
