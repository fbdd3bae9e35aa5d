"""Keeping the test process's memory bounded: the suite runs hundreds of models in one process."""

from __future__ import annotations


def free_memory() -> None:
    """Drop cached ONNX Runtime sessions (their arenas keep the largest batch's memory), collect
    garbage and hand the freed heap pages back to the OS (glibc keeps them otherwise)."""
    import ctypes
    import gc

    from onnxviz import runtime

    runtime.clear_cache()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
