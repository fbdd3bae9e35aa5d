"""The zoo's torch work runs on one thread."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """torch's OpenMP threads on the zoo's small tensors (64 px, batch 2): the float64 reference
    gradient of swin_tiny took 13.9 s wall (9.5 s CPU) on two threads and 0.9 s (0.6 s CPU) on one
    on the shared 2-core machine (likely its OpenMP threads waiting for each other at every op
    while other threads hold the two cores). Only the speed changes: the references are
    the same computations, and every tolerance and check stays as it was. Restored after each
    module so that other folders keep torch's default."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
