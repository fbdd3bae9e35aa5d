"""Stream any number of perturbed samples through a model with a few batches in memory.

A worker thread fills the next batch (Numba kernels release the GIL) while the caller's thread
runs ONNX Runtime on the current one (which releases it too). Buffers are reused: at most
``slots`` batches exist at any time, whatever the number of samples.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


def stream(
    total: int,
    batch_size: int,
    make_slot: Callable[[int], Any],
    fill: Callable[[int, int, Any], None],
    evaluate: Callable[[int, Any], Any],
    consume: Callable[[int, int, Any, Any], None],
    *,
    slots: int = 2,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Generate, evaluate and consume ``total`` samples batch by batch.

    Args:
        total: number of samples (indices 0 .. total - 1).
        batch_size: samples per batch.
        make_slot: ``make_slot(batch_size)`` allocates one reusable batch (any object: buffers).
        fill: ``fill(start, stop, slot)`` writes samples ``start .. stop - 1`` into ``slot``;
            runs in the worker thread.
        evaluate: ``evaluate(n, slot)`` runs the model on the first ``n`` samples of ``slot``
            and returns their scores; runs in the calling thread.
        consume: ``consume(start, stop, slot, scores)`` folds one batch into the result; runs in
            the calling thread, in sample order, before ``slot`` is refilled.
        slots: batches in flight (2: one generated while the other is evaluated).
        on_batch: called with the batch's sample count after each batch (progress bars).

    Returns:
        The number of slots allocated (never more than ``slots``).
    """
    total, batch_size = int(total), int(batch_size)
    if total <= 0:
        return 0
    starts = list(range(0, total, batch_size))
    nslots = max(1, min(int(slots), len(starts)))
    free: queue.Queue = queue.Queue()
    ready: queue.Queue = queue.Queue()
    for _ in range(nslots):
        free.put(make_slot(batch_size))
    cancel = threading.Event()

    def produce():
        try:
            for start in starts:
                slot = free.get()
                if cancel.is_set() or slot is _STOP:
                    return
                stop = min(start + batch_size, total)
                fill(start, stop, slot)
                ready.put((start, stop, slot))
        except BaseException as e:  # handed to the caller's thread
            ready.put(e)

    worker = threading.Thread(target=produce, name="onnxviz-perturb", daemon=True)
    worker.start()
    try:
        for _ in starts:
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            start, stop, slot = item
            scores = evaluate(stop - start, slot)
            consume(start, stop, slot, scores)
            free.put(slot)
            if on_batch is not None:
                on_batch(stop - start)
    finally:
        cancel.set()
        free.put(_STOP)
        worker.join()
    return nslots
