"""Resource limits, decided before work starts: memory, pixels, threads, files and run time.

Every limit has a default that fits the machine and can be changed for one process:

- **memory budget**: a fraction (:data:`MEMORY_FRACTION`) of the memory available when first asked
  (less under an address-space or container limit, page cache counted as free);
  ``ONNXVIZ_MEMORY_BUDGET`` (bytes, ``"4G"``, ``"512M"`` or ``"30%"``) or :func:`set_memory_budget`.
  Batch sizes are cut to fit it (:func:`fit_batch`); work that cannot fit even one sample at a
  time is refused with the numbers (:func:`check_memory`).
- **pixels**: images larger than :data:`MAX_PIXELS` (``ONNXVIZ_MAX_PIXELS``) are refused from their
  header, before decoding; the runs made while loading a model are sized from its declared
  shapes against the memory budget before any of them runs (:mod:`onnxviz.model.budget`).
- **threads**: at most the machine's cores x 4.
- **files**: only regular files are read (a FIFO, a device or ``/dev/zero`` would block or read
  forever); text files (labels) at most :data:`MAX_TEXT_BYTES`.
- **run time**: runs made while loading (opset and batch checks, shape probes) stop after
  :data:`PROBE_SECONDS` (``ONNXVIZ_PROBE_TIMEOUT``) through ONNX Runtime's terminate flag.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from .errors import ExecutionError, OnnxvizError, OptionError, ResourceError

#: Share of the available memory onnxviz plans to use by default.
MEMORY_FRACTION = 0.5
#: Largest image (height x width) decoded; a 10000 x 10000 photo is allowed.
MAX_PIXELS = int(os.environ.get("ONNXVIZ_MAX_PIXELS", 100_000_000))
#: Largest labels or other text file read.
MAX_TEXT_BYTES = 64 << 20
#: Seconds a run made while loading a model may take (what a user waits for at a prompt).
PROBE_SECONDS = float(os.environ.get("ONNXVIZ_PROBE_TIMEOUT", 10))

_budget: int | None = None
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def available_memory() -> int:
    """Bytes of memory available now: ``MemAvailable`` on Linux (physical memory elsewhere), less
    where this process is held to less: the room left under its address-space limit
    (``ulimit -v``, ``RLIMIT_AS``) or its container's memory limit (cgroup ``memory.max``)."""
    found = _meminfo("MemAvailable")
    if found is None:
        try:
            found = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            found = 8 << 30
    return max(0, min(found, _address_space_left(), _cgroup_left()))


def _meminfo(key: str, path: str = "/proc/meminfo") -> int | None:
    """A ``kB`` field of ``/proc/meminfo`` (or ``/proc/self/status``) in bytes, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> float:
    """Bytes this process may still map under ``RLIMIT_AS`` (inf when unlimited)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return float("inf")
    if soft == resource.RLIM_INFINITY or soft < 0:
        return float("inf")
    return soft - (_meminfo("VmSize", "/proc/self/status") or 0)


def _cgroup_left(proc: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> float:
    """Bytes left under this process's cgroup v2 ``memory.max``, reclaimable page cache counted as
    free (inf when unlimited)."""
    try:
        with open(proc) as f:
            rel = next((ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::")), None)
        if rel is None:
            return float("inf")
        folder = Path(root) / rel.lstrip("/")
        most = (folder / "memory.max").read_text().strip()
        if most == "max":
            return float("inf")
        used = int((folder / "memory.current").read_text())
        for line in (folder / "memory.stat").read_text().splitlines():
            if line.startswith("inactive_file "):  # page cache the kernel reclaims first
                used -= int(line.split()[1])
        return int(most) - max(0, used)
    except (OSError, ValueError, IndexError):
        return float("inf")


def parse_bytes(text, what: str = "memory budget") -> int:
    """``"4G"``, ``"512M"``, ``"30%"`` (of the available memory) or a number of bytes."""
    s = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    try:
        if s.endswith("%"):
            share = float(s[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return int(available_memory() * share / 100)
        unit = s[-1] if s and s[-1] in _UNITS else ""
        value = float(s[: len(s) - len(unit)]) * _UNITS[unit]
        if not 1 << 20 <= value < 1 << 50:
            raise ValueError
        return int(value)
    except (ValueError, IndexError):
        raise OptionError(f"{what} must be a size such as 4G, 512M or 30% (at least 1M), "
                          f"got {text!r}") from None


def memory_budget() -> int:
    """The memory budget in bytes."""
    global _budget
    if _budget is None:
        env = os.environ.get("ONNXVIZ_MEMORY_BUDGET")
        _budget = (parse_bytes(env, "ONNXVIZ_MEMORY_BUDGET") if env
                   else int(available_memory() * MEMORY_FRACTION))
    return _budget


def set_memory_budget(value) -> int:
    """Set the budget (bytes or text as in :func:`parse_bytes`; None: the default again).
    Returns the previous budget."""
    global _budget
    old = memory_budget()
    _budget = None if value is None else (int(value) if isinstance(value, int)
                                          else parse_bytes(value))
    return old


def gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def check_memory(nbytes: float, what: str) -> None:
    """Refuse ``what`` when it needs more than the budget."""
    if nbytes > memory_budget():
        raise ResourceError(f"{what} needs about {gib(nbytes)}, more than the memory budget of "
                            f"{gib(memory_budget())} (set ONNXVIZ_MEMORY_BUDGET or --memory, or "
                            "lower the option)")


def fit_batch(requested: int, per_item: float, fixed: float = 0, what: str = "a batch") -> int:
    """The largest batch size <= ``requested`` whose ``fixed + n * per_item`` bytes fit the budget;
    refuses when one item does not fit."""
    check_memory(fixed + per_item, f"{what} of one")
    room = memory_budget() - fixed
    return max(1, min(int(requested), int(room // max(per_item, 1))))


def max_threads() -> int:
    return (os.cpu_count() or 1) * 4


def check_threads(threads) -> int | None:
    """``threads`` as an int in 1 .. cores x 4, or None."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int | float) or threads != int(threads):
        raise OptionError(f"threads must be a whole number, got {threads!r}")
    if not 1 <= threads <= max_threads():
        raise OptionError(f"threads must be between 1 and {max_threads()} (this machine's "
                          f"{os.cpu_count()} cores x 4), got {threads}")
    return int(threads)


def check_pixels(height: int, width: int, what: str) -> None:
    if height * width > MAX_PIXELS:
        raise ResourceError(f"{what} is {width}x{height} pixels, more than the limit of "
                            f"{MAX_PIXELS:,} (ONNXVIZ_MAX_PIXELS)")


def regular_file(path, what: str, error=OnnxvizError, max_bytes: int | None = None) -> Path:
    """``path`` when it names a readable regular file (symlinks followed), else ``error``."""
    try:
        text = os.fspath(path)
    except TypeError:
        raise error(f"{what} must be a path, got a {type(path).__name__}") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text or "\0" in text:
        raise error(f"{what} path {text!r} is empty or contains a NUL byte")
    p = Path(text)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"{what} not found: {text}") from None
    except OSError as e:  # a symlink loop, a name too long, no permission
        raise error(f"cannot open {what} {text}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {text} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {text} is not a regular file (a pipe, socket or device would block "
                    "or never end)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ResourceError(f"{what} {text} is {gib(st.st_size)}, more than the "
                            f"{gib(max_bytes)} onnxviz reads for it")
    return p


def run_limited(sess, outputs, feeds, seconds: float | None = None, what: str = "the model"):
    """``sess.run`` stopped after ``seconds`` (default :data:`PROBE_SECONDS`) by ONNX Runtime's
    terminate flag; a run that is stopped raises :class:`ExecutionError`."""
    import onnxruntime as ort

    seconds = PROBE_SECONDS if seconds is None else seconds
    ro = ort.RunOptions()
    ro.log_severity_level = 4
    stopped = threading.Event()

    def stop():
        stopped.set()
        ro.terminate = True

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        return sess.run(outputs, feeds, ro)
    except Exception:
        if stopped.is_set():
            raise ExecutionError(f"running {what} took more than {seconds:g} s; stopped "
                                 "(ONNXVIZ_PROBE_TIMEOUT sets the limit)") from None
        raise
    finally:
        timer.cancel()
