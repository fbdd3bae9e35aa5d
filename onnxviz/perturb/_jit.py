"""How the perturbation kernels are compiled.

Kernels are ``njit(nogil=True, cache=True)``. Their loops over samples are ``prange`` loops, run
in parallel only where that pays: the streaming pipeline already overlaps generation with ONNX
Runtime, whose intra-op threads take the cores, so on small machines parallel kernels only add
contention (measured: 15x slower batches on 2 busy cores). They go parallel on machines with 8
or more cores, or when ``ONNXVIZ_PARALLEL_KERNELS=1`` (``0`` forces sequential).
"""

from __future__ import annotations

import os

from numba import config, njit

if not config.CACHE_DIR:  # numba imported before onnxviz set NUMBA_CACHE_DIR (onnxviz/__init__)
    config.CACHE_DIR = os.environ.get("NUMBA_CACHE_DIR", "")

PARALLEL = os.environ.get("ONNXVIZ_PARALLEL_KERNELS", "") == "1" or (
    os.environ.get("ONNXVIZ_PARALLEL_KERNELS", "") != "0" and (os.cpu_count() or 1) >= 8
)


def kernel(fn):
    """Compile a batch kernel (``prange`` over samples parallel when :data:`PARALLEL`)."""
    return njit(nogil=True, cache=True, parallel=PARALLEL)(fn)
