"""The streaming pipeline: order, overlap of generation and inference, bounded memory, errors."""

import threading
import tracemalloc

import numpy as np
import pytest

from onnxviz.perturb import stream


class Slot:
    def __init__(self, n, shape):
        self.x = np.empty((n, *shape), np.float32)


def _collect(total, batch_size, shape=(3, 8, 8), slots=2):
    made, seen = [], []

    def make_slot(n):
        made.append(Slot(n, shape))
        return made[-1]

    def fill(start, stop, slot):
        slot.x[: stop - start] = np.arange(start, stop, dtype=np.float32)[:, None, None, None]

    def evaluate(n, slot):
        return slot.x[:n].reshape(n, -1).mean(axis=1)

    def consume(start, stop, slot, scores):
        seen.append((start, stop, scores.copy()))

    n = stream(total, batch_size, make_slot, fill, evaluate, consume, slots=slots)
    return n, made, seen


@pytest.mark.parametrize("total,bs", [(1, 4), (10, 3), (64, 64), (65, 8)])
def test_every_sample_once_in_order(total, bs):
    n, made, seen = _collect(total, bs)
    assert n == len(made) <= 2
    assert [s for s, _, _ in seen] == list(range(0, total, bs))
    np.testing.assert_array_equal(np.concatenate([sc for *_, sc in seen]), np.arange(total))


def test_generation_overlaps_inference():
    """Batch k + 1 is generated while batch k is being evaluated."""
    next_ready = [threading.Event() for _ in range(4)]

    def fill(start, stop, slot):
        next_ready[start // 2].set()

    overlapped = []

    def evaluate(n, slot):
        k = len(overlapped)
        if k + 1 < 4:  # wait (inside "inference") for the worker to produce the next batch
            overlapped.append(next_ready[k + 1].wait(timeout=10))
        else:
            overlapped.append(True)
        return np.zeros(n)

    stream(8, 2, lambda n: Slot(n, (1,)), fill, evaluate, lambda *a: None)
    assert overlapped == [True] * 4


def test_memory_bounded_by_slots_not_samples():
    """5,000 samples of 3x64x64 (245 MB if held at once) peak at ~2 batches of 16."""
    batch_bytes = 16 * 3 * 64 * 64 * 4

    def peak(total):
        tracemalloc.start()
        try:
            n, made, _ = _collect(total, 16, shape=(3, 64, 64))
            return tracemalloc.get_traced_memory()[1], n
        finally:
            tracemalloc.stop()

    small, _ = peak(100)
    big, nslots = peak(5000)
    assert nslots == 2
    assert big < 3 * batch_bytes, big
    assert big < small + batch_bytes  # no growth with the number of samples


@pytest.mark.parametrize("where", ["fill", "evaluate"])
def test_errors_reach_the_caller_and_stop_the_worker(where):
    class Boom(RuntimeError):
        pass

    def fill(start, stop, slot):
        if where == "fill" and start == 6:
            raise Boom("fill")

    def evaluate(n, slot):
        if where == "evaluate":
            raise Boom("evaluate")
        return np.zeros(n)

    before = threading.active_count()
    with pytest.raises(Boom, match=where):
        stream(20, 3, lambda n: Slot(n, (1,)), fill, evaluate, lambda *a: None)
    assert threading.active_count() == before
