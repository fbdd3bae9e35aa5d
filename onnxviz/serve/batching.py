"""Dynamic batching: images that arrive together for the same model and settings run together.

Each key (model, method, options) has a queue. A collector task waits for a free worker, then
for the queue to hold ``max_batch`` images or for its oldest image to have waited ``max_wait``,
and hands up to ``max_batch`` images to a worker thread as one call. While every worker is busy the
queues keep filling, so under load batches grow by themselves and an idle server answers a lone
request after ``max_wait`` at most. A full server (``max_queue`` images waiting) refuses new work
with :class:`~onnxviz.serve.errors.Busy` (503 and ``Retry-After``) instead of queueing without end.

A batch that fails with a user error is run again one request at a time, so one request's bad
input never fails the requests batched with it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import OnnxvizError
from .errors import Busy, TooLarge


@dataclass
class _Pending:
    payload: object
    future: asyncio.Future
    arrived: float
    group: int  # the request it belongs to
    queued: bool = True  # counted in the depth


class Batcher:
    """Gathers submitted items by key and runs ``run(key, payloads) -> results`` on threads.

    Args:
        run: called on a worker thread with a key and a list of payloads; returns one result per
            payload, in order.
        max_batch, max_wait, max_queue, workers: see :class:`onnxviz.serve.limits.Limits`.
        observe: ``observe(key, size, seconds)`` after each batch (metrics); optional.
    """

    def __init__(self, run, *, max_batch: int, max_wait: float, max_queue: int, workers: int,
                 observe=None):
        self.run = run
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait, max_queue
        self.workers = workers
        self.observe = observe
        self.depth = 0  # images waiting, not counting those whose request gave up
        self._queues: dict[tuple, deque[_Pending]] = {}
        self._wake: dict[tuple, asyncio.Event] = {}
        self._collectors: dict[tuple, asyncio.Task] = {}
        self._free: asyncio.Semaphore | None = None
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="onnxviz-batch")
        self._batch_seconds = 0.0  # moving average, for Retry-After
        self._groups = 0

    def submit(self, key: tuple, payloads: list) -> asyncio.Future:
        """Queue ``payloads`` under ``key``; the returned future gives their results in order,
        an exception in the place of a payload that failed.

        Raises:
            TooLarge: more images than the queue holds at all (retrying cannot help).
            Busy: the queue cannot take ``len(payloads)`` more images now.
        """
        n = len(payloads)
        if n > self.max_queue:
            raise TooLarge(f"{n} images in one request; this server queues at most "
                           f"{self.max_queue} (onnxviz serve --max-queue)")
        if self.depth + n > self.max_queue:
            raise Busy(f"the server is busy ({self.depth} images queued, limit {self.max_queue}); "
                       "retry later", retry_after=self.retry_after())
        loop = asyncio.get_running_loop()
        if self._free is None:
            self._free = asyncio.Semaphore(self.workers)
        self._groups += 1
        queue = self._queues.setdefault(key, deque())
        now = time.monotonic()
        futures = [loop.create_future() for _ in payloads]
        for payload, future in zip(payloads, futures):
            pending = _Pending(payload, future, now, self._groups)
            future.add_done_callback(lambda f, p=pending: f.cancelled() and self._unqueue(p))
            queue.append(pending)
        self.depth += n
        self._wake.setdefault(key, asyncio.Event()).set()
        if key not in self._collectors:
            self._collectors[key] = loop.create_task(self._collect(key))
        return asyncio.gather(*futures, return_exceptions=True)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (at least 1)."""
        batches = self.depth / (self.max_batch * self.workers)
        return max(1, math.ceil(batches * self._batch_seconds))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _collect(self, key: tuple) -> None:
        queue, wake = self._queues[key], self._wake[key]
        try:
            while queue:
                await self._free.acquire()
                batch = await self._gather(queue, wake)
                if batch:
                    asyncio.get_running_loop().create_task(self._run(key, batch))
                else:
                    self._free.release()
        finally:
            del self._collectors[key]  # synchronous with the last check of the queue

    async def _gather(self, queue: deque, wake: asyncio.Event) -> list[_Pending]:
        while len(queue) < self.max_batch:
            left = queue[0].arrived + self.max_wait - time.monotonic()
            if left <= 0:
                break
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), left)
            except asyncio.TimeoutError:
                break
        batch = []
        while queue and len(batch) < self.max_batch:
            p = queue.popleft()
            self._unqueue(p)
            if not p.future.done():  # a request that timed out is dropped here
                batch.append(p)
        return batch

    def _unqueue(self, p: _Pending) -> None:
        """Stop counting ``p`` in the depth: taken into a batch, or its request gave up (a
        timed-out request frees its places in the queue at once)."""
        if p.queued:
            p.queued = False
            self.depth -= 1

    async def _run(self, key: tuple, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        t = time.perf_counter()
        try:
            try:
                results = await loop.run_in_executor(self._executor, self.run, key,
                                                     [p.payload for p in batch])
            except OnnxvizError:
                if len({p.group for p in batch}) == 1:
                    raise
                await self._one_by_one(key, batch)
                return
            for p, r in zip(batch, results):
                if not p.future.done():
                    p.future.set_result(r)
        except Exception as e:  # noqa: BLE001 - a user error for all, or a bug (500, logged)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
        finally:
            seconds = time.perf_counter() - t
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
            if self.observe is not None:
                self.observe(key, len(batch), seconds)
            self._free.release()

    async def _one_by_one(self, key: tuple, batch: list[_Pending]) -> None:
        """Run each request of a failed batch alone: only the bad one fails."""
        loop = asyncio.get_running_loop()
        groups: dict[int, list[_Pending]] = {}
        for p in batch:
            groups.setdefault(p.group, []).append(p)
        for members in groups.values():
            try:
                results = await loop.run_in_executor(self._executor, self.run, key,
                                                     [p.payload for p in members])
            except Exception as e:  # noqa: BLE001 - this request's answer, whatever it is
                for p in members:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            for p, r in zip(members, results):
                if not p.future.done():
                    p.future.set_result(r)
