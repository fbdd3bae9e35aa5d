"""Execution of a :class:`~.plan.Plan`: cached activations, crop graphs on ONNX Runtime, Numba
pastes.

Per image, the original runs once through the whole model, keeping the tensors the plan reads
(those gathered with a halo, padded once, and the frontier). Per batch of positions, the occluded
input windows are cut (:func:`.kernels.occluded_windows`), each crop graph runs on its gathered
and direct inputs, the frontier crops are pasted into copies of the cached tensors
(:func:`.kernels.paste_windows`) and the suffix graph runs on them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import limits, runtime
from .graphs import fold_pads, segment_models, suffix_model
from .kernels import gather_windows, occluded_windows, paste_windows
from .plan import Plan, constants, make_plan

#: ``incremental="auto"`` uses the plan when the cost model predicts at least this speed-up.
AUTO_SPEEDUP = 1.3
#: Most bytes one batch of positions holds (crops, gathered windows, pasted frontier): large
#: patches (MATLAB's 71 px) have large windows, and batches beyond this gain no speed.
BATCH_BYTES = 128 << 20
#: The suffix graph keeps ONNX Runtime's memory arena when a batch of this many positions needs
#: at most ``ARENA_BYTES``.
ARENA_BATCH, ARENA_BYTES = 32, 64 << 20


_POOL: ThreadPoolExecutor | None = None


def _each(threads: int, kernel, shared: tuple, per: tuple, last: bool) -> None:
    """``kernel(*shared, *per, last)`` with the position arrays ``per`` cut into ``threads``
    parts run at once (the kernels release the GIL; between ONNX Runtime's runs the cores are
    free, and the pool's idle threads wait without spinning)."""
    global _POOL
    n = len(per[0])
    parts = min(threads, n)
    if parts <= 1:
        kernel(*shared, *per, last)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="onnxviz-incremental")
    cuts = np.linspace(0, n, parts + 1).astype(int)
    jobs = [_POOL.submit(kernel, *shared, *(a[i:j] for a in per), last)
            for i, j in zip(cuts[:-1], cuts[1:])]
    for job in jobs:
        job.result()


def _last(window) -> bool:
    return tuple(window.spatial) == (1, 2)


def _crop_shape(window, size) -> tuple:
    dims = list(window.shape[1:])
    dims[window.spatial[0] - 1], dims[window.spatial[1] - 1] = size
    return tuple(dims)


def plan_for(model, rects: np.ndarray, max_share: float | None = None,
             cap: float | None = None) -> Plan:
    """The :class:`Plan` of occluding ``rects`` (image coordinates) on ``model``'s input
    (``max_share`` and ``cap``: see :func:`.plan.make_plan`)."""
    spec = model.input
    if spec.flat_size:
        return Plan(input=spec.name, reason="the input is a flattened image")
    if np.dtype(spec.dtype) != np.float32:
        return Plan(input=spec.name, reason=f"the input is {np.dtype(spec.dtype)}, not float32")
    proto = fold_pads(model.proto, constants(model.proto))
    names = [spec.name] + [o for n in proto.graph.node for o in n.output if o]
    shapes = {t: model.shape_of(t) for t in names}
    shapes.update({t.name: (1, *t.dims) for t in proto.graph.initializer})
    spatial = (1, 2) if spec.layout == "NHWC" else (2, 3)
    plan = make_plan(proto, spec.name, spatial, shapes, rects, model.score_output, max_share,
                     cap)
    plan.graph = None if proto is model.proto else proto
    return plan


class Runner:
    """Runs the occluded positions of one :class:`Plan` on one model.

    Args:
        model: the :class:`onnxviz.Model`.
        plan: its plan (``plan.reason`` is None).
        rects: (P, 4) the occluding rectangles the plan was made for.
    """

    def __init__(self, model, plan: Plan, rects: np.ndarray):
        self.model, self.plan = model, plan
        self.rects = np.ascontiguousarray(rects, np.int64)
        self._original = None  # (names, session) of the original's run (prepare)
        proto = model.proto if plan.graph is None else plan.graph  # Pads folded (plan_for)
        graphs = segment_models(proto, plan, constants(proto))
        self.segments = [(None, feeds, outs) for _, feeds, outs in graphs]  # sessions below
        gathered = {t for _, feeds, _ in self.segments for _, t, r, _ in feeds if r is not None}
        self.cached = [t for t in dict.fromkeys([*gathered, *plan.frontier]) if t != plan.input]
        last = {t: k for k, (_, feeds, _) in enumerate(self.segments) for _, t, _, _ in feeds}
        #: per segment, the crops no later segment and no paste reads (freed after it)
        self.release = [[t for t, k2 in last.items() if k2 == k and t not in plan.frontier]
                        for k in range(len(self.segments))]
        #: ONNX Runtime's arena keeps a batch's peak between the suffix's runs: where that is
        #: small, it saves the allocations of many small tensors (EfficientNet-Lite0's suffix:
        #: 0.55 -> 0.47 of the floor's time); large windows (ResNet-50 at patch 71) run without
        #: it, within budget. The crop graphs never keep it (ResNet-18: 7% slower with it).
        self.arena = self.position_bytes() * ARENA_BATCH <= ARENA_BYTES
        self.segments = [(runtime.session(m, model.providers, model.threads, arena=False),
                          feeds, outs) for m, feeds, outs in graphs]
        self.suffix = runtime.session(suffix_model(proto, plan, model.score_output),
                                      model.providers, model.threads, arena=self.arena)

    def cache_bytes(self) -> int:
        """Bytes of the cached original tensors, padded copies included."""
        total = 0
        for _, feeds, _ in self.segments:
            for _, t, r, _ in feeds:
                if r is not None:
                    w = self.plan.windows[t]
                    ya, xa = w.spatial
                    total += 4 * w.channels * (w.shape[ya] + r.pads[0] + r.pads[1]) * (
                        w.shape[xa] + r.pads[2] + r.pads[3])
        for t in self.plan.frontier:
            w = self.plan.windows[t]
            total += 4 * int(np.prod(w.shape[1:]))
        return total + self.plan.windows[self.plan.input].at.nbytes * len(self.plan.windows)

    def position_bytes(self) -> int:
        """Bytes one position needs at the peak of a batch: the crops alive, a segment's gathered
        windows and outputs (twice: ONNX Runtime's own), then the pasted frontier and the suffix
        run (about twice the frontier again)."""
        plan = self.plan

        def crop(t, size=None):
            w = plan.windows[t]
            return 4 * w.channels * int(np.prod(size or w.size))

        alive = {plan.input: crop(plan.input)}
        peak = 0
        for (_, feeds, outs), free in zip(self.segments, self.release):
            reads = sum(crop(t, r.size) for _, t, r, _ in feeds if r is not None)
            made = sum(crop(t) for t in outs)
            peak = max(peak, sum(alive.values()) + reads + 2 * made)
            alive.update((t, crop(t)) for t in outs)
            for t in free:
                alive.pop(t, None)
        whole = sum(4 * int(np.prod(plan.windows[t].shape[1:])) for t in plan.frontier)
        return max(peak, sum(alive.values()) + 3 * whole)  # the suffix's own tensors: ~2 x whole

    def fit_batch(self, requested: int) -> int:
        """``requested`` positions cut to :data:`BATCH_BYTES` and to the memory budget (the cache
        counts against it)."""
        per = self.position_bytes()
        requested = max(1, min(int(requested), BATCH_BYTES // max(per, 1)))
        return limits.fit_batch(requested, per, self.cache_bytes(),
                                what="an incremental occlusion batch")

    def prepare(self, x0: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Run the original ``x0`` (one sample, model layout) once, keeping what the plan reads;
        returns its scores (1, K)."""
        model, plan = self.model, self.plan
        x = x0.reshape(1, *model.input.shape)
        if self._original is None:  # the graph exposing what the plan reads, kept by this
            # runner alone: the model's cache would keep a second copy of the graph for as long
            # as the model lives, and a session that runs one image per explanation needs no
            # memory arena and no re-laid-out copy of the weights (ResNet-50's seed run: peak
            # 1,664 -> 1,461 MiB)
            names = tuple(dict.fromkeys([*self.cached, model.score_output]))
            data = model._with_outputs(names, keep=False).SerializeToString()  # copy freed
            self._original = (names, runtime.session(data, model.providers, model.threads,
                                                     cache=False, arena=False, prepack=False))
            del data
        names, sess = self._original
        got = dict(zip(names, sess.run(list(names), {model.input.name: x})))
        self.x0, self.base = x0, base
        self.cache = {t: np.ascontiguousarray(got[t][0], np.float32) for t in self.cached}
        self.cache[plan.input] = x0
        self.padded = {}
        for _, feeds, _ in self.segments:
            for _, t, r, _ in feeds:
                if r is not None and (t, r.pads, r.value) not in self.padded:
                    self.padded[(t, r.pads, r.value)] = _pad(self.cache[t], plan.windows[t], r)
        return got[model.score_output].reshape(1, -1)

    def scores(self, start: int, stop: int | None = None) -> np.ndarray:
        """Scores (n, K) of the occluded positions ``start .. stop - 1``, or of the positions in
        the index array ``start`` (``stop`` None)."""
        at = slice(start, stop) if stop is not None else np.asarray(start)
        plan, n = self.plan, len(self.rects[at])
        win = plan.windows[plan.input]
        crops = {plan.input: np.empty((n, *_crop_shape(win, win.size)), np.float32)}
        workers = min(self.model.threads or os.cpu_count() or 1, os.cpu_count() or 1)
        _each(workers, occluded_windows, (self.x0, self.base),
              (self.rects[at], win.at[at], crops[plan.input]), _last(win))
        for (sess, feeds, outs), free in zip(self.segments, self.release):
            feed = {}
            for name, t, r, out in feeds:
                if r is None:
                    feed[name] = crops[t]
                    continue
                tw, ow = plan.windows[t], plan.windows[out]
                buf = np.empty((n, *_crop_shape(tw, r.size)), np.float32)
                crop_at = tw.at[at] + np.array([r.pads[0], r.pads[2]], np.int32)
                read_at = ow.at[at] * np.array(r.stride, np.int32)
                _each(workers, gather_windows, (self.padded[(t, r.pads, r.value)],),
                      (crops[t], crop_at, read_at, buf), _last(tw))
                feed[name] = buf
            for t, v in zip(outs, sess.run(outs, feed)):
                crops[t] = v
            for t in free:
                crops.pop(t, None)
        feed = {}
        for t in plan.frontier:
            w = plan.windows[t]
            full = np.empty((n, *w.shape[1:]), np.float32)
            _each(workers, paste_windows, (self.cache[t],), (crops[t], w.at[at], full), _last(w))
            feed[t] = full
        out = runtime.run_batched(self.suffix, feed, [self.model.score_output],
                                  batch_size=n, fixed_batch=self.model.fixed_batch)[0]
        return out.reshape(n, -1).astype(np.float32, copy=False)


def _pad(cached: np.ndarray, window, read) -> np.ndarray:
    """``cached`` (one sample) padded on its spatial axes with ``read.pads`` of ``read.value``."""
    pads = [(0, 0)] * cached.ndim
    ya, xa = window.spatial
    pads[ya - 1] = (read.pads[0], read.pads[1])
    pads[xa - 1] = (read.pads[2], read.pads[3])
    return np.pad(cached, pads, constant_values=np.float32(read.value))
