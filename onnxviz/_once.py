"""First use, once: what a cache builds on a miss is built by one thread while the others wait.

Threads that explain with one model at the same moment all miss its caches together (ONNX Runtime
sessions, gradient graphs, the shape probe, Numba's compiled kernels). Left alone, each builds its
own copy at once, and those builds are where concurrency is least safe: ONNX Runtime sessions
built while others run, several deep copies of one graph, Numba compiling and loading its cache.
The caches take a :class:`KeyedLock` and check again once they hold the key's lock.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager


class KeyedLock:
    """One lock per key, made on first use and dropped when no thread holds or waits for it.

    >>> building = KeyedLock()
    >>> with building("key"):  # look in the cache again here, build on a miss, store
    ...     pass
    """

    def __init__(self):
        self._guard = threading.Lock()
        self._locks: dict = {}

    @contextmanager
    def __call__(self, key):
        with self._guard:
            entry = self._locks.setdefault(key, [threading.RLock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if not entry[1]:
                    self._locks.pop(key, None)
