"""What runs in each actor of the pool: one model, one ONNX Runtime session, batches of images.

:class:`ExplainBatch` is the callable class given to ``Dataset.map_batches``: ``__init__`` loads the
model once from the bytes broadcast through the object store, with as many intra-op threads as the
actor has CPUs; ``__call__`` decodes a batch of image files, explains it with every method, writes
the PNGs and the batch's Parquet part files, and returns one small status row per image x method.
"""

from __future__ import annotations

import contextlib
import os
import resource
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..results import (PNGS, Record, Render, stem_of, target_stem, write_box_grid,
                       write_explanation_pngs)
from . import store


@dataclass(frozen=True)
class Job:
    """Everything an actor needs, sent once with its constructor.

    Attributes:
        methods: registry names, in output order.
        options: per method, the keyword options of its explainer.
        target: as :func:`onnxviz.explain` takes it (None, an index or a label).
        load: keyword arguments of :func:`onnxviz.load` besides the source and ``threads``.
        threads: ONNX Runtime intra-op threads; None: the actor's CPUs.
        out: the output folder (a path every node can write).
        config_key: hash of the run's manifest, part of every part file's name.
        render: how to draw the PNGs; None writes none.
        scheme: ``s3`` etc. when the images are URIs (Ray Data gives paths without it), else "".
        shared_stems: PNG stems that several images have (None: unknown, always add a hash).
        memory: the actor's memory budget in bytes (``--memory``); None: its default.
        nms: a detector's NMS options (``score_threshold``, ...), as :func:`onnxviz.explain`
            takes them.
    """

    methods: tuple[str, ...]
    options: dict
    target: object
    load: dict
    threads: int | None
    out: str
    config_key: str
    render: Render | None = PNGS
    scheme: str = ""
    shared_stems: frozenset[str] | None = field(default=None)
    memory: int | None = None
    nms: dict = field(default_factory=dict)


class ExplainBatch:
    """Explains batches of images in a Ray actor (``map_batches``' callable class).

    Args:
        job: the run's :class:`Job`.
        refs: ``[model bytes, skip]`` as object references, put once by the driver: the ONNX file
            (external data inlined) and ``{image: methods already written}``.
    """

    def __init__(self, job: Job, refs: list):
        import ray

        from .. import load
        from ..explainers.dense import explainer

        self.job = job
        self.out = Path(job.out)
        self.worker = f"{ray.util.get_node_ip_address()}:{os.getpid()}"
        if not (self.out / store.MANIFEST).is_file():  # the driver wrote it before starting us
            from . import DistributedError

            raise DistributedError(
                f"the output folder {job.out} is not visible on node {self.worker}: on a cluster, "
                "--out must be a folder every node mounts at the same path (NFS, a shared volume)")
        if job.memory is not None:
            from .. import limits

            limits.set_memory_budget(int(job.memory))
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        threads = job.threads or max(1, int(cpus))
        _numba_threads(threads)
        data, self.skip = ray.get(refs[0]), ray.get(refs[1])
        with warnings.catch_warnings():  # the driver has shown the load's warnings once
            warnings.simplefilter("ignore")
            self.model = load(data, threads=threads, **job.load)
        self.explainers = {m: explainer(self.model, m, job.options[m], job.nms)
                           for m in job.methods}

    def __call__(self, batch: dict) -> dict:
        keys = [self._key(p) for p in batch["path"]]
        payload = batch["bytes"] if "bytes" in batch else batch["image"]
        images: dict[int, np.ndarray] = {}
        todo: dict[str, list[int]] = {m: [] for m in self.job.methods}
        errors: list[dict] = []
        for i, key in enumerate(keys):
            left = [m for m in self.job.methods if m not in self.skip.get(key, ())]
            if not left or key in keys[:i]:  # done, or a Dataset listing an image twice
                continue
            try:
                images[i] = self._decode(payload[i], key)
            except Exception as e:  # noqa: BLE001 - any undecodable input is an errors row
                errors += [store.error_row(key, m, "decode", e) for m in left]
                continue
            for m in left:
                todo[m].append(i)
        records, maps = [], []
        for m in self.job.methods:
            for i, found in self._explain(m, todo[m], images, keys, errors):
                written = [(e, self._pngs(keys[i], images[i], e, k)) for k, e in enumerate(found)]
                if self.model.task == "detect" and self.job.render is not None:
                    grid = write_box_grid(self.out / store.PNG, stem_of(keys[i],
                                          self.job.shared_stems), m, images[i], written,
                                          self.job.render)
                    written = [(e, {**paths, **grid}) for e, paths in written]
                for e, paths in written:
                    records.append(Record.of(keys[i], e, paths))
                    maps.append(e.heatmap)
        name = store.part_name(self.job.config_key,
                               [r.image for r in records] + [r["image"] for r in errors])
        if records:
            store.write_part(self.out / store.EXPLANATIONS, name,
                             store.explanation_table(records, maps))
        if errors:
            store.write_part(self.out / store.ERRORS, name, store.error_table(errors))
        rows = [(r.image, r.method, "ok") for r in records] + \
               [(r["image"], r["method"], "error") for r in errors]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
        return {"image": np.array([r[0] for r in rows], dtype=object),
                "method": np.array([r[1] for r in rows], dtype=object),
                "status": np.array([r[2] for r in rows], dtype=object),
                "worker": np.array([self.worker] * len(rows), dtype=object),
                "peak_rss": np.full(len(rows), peak, dtype=np.int64)}

    def _key(self, path) -> str:
        path = str(path)
        return f"{self.job.scheme}://{path}" if self.job.scheme else path

    @staticmethod
    def _decode(item, key: str) -> np.ndarray:
        from ..imageio import decode_image, to_rgb

        if isinstance(item, (bytes, bytearray, memoryview)):
            return decode_image(bytes(item), what=key, exact=True)
        return to_rgb(np.asarray(item), what=key, exact=True)

    def _explain(self, method: str, idx: list[int], images, keys, errors):
        """``(index, [Explanation])`` for the images ``idx`` (one each for a classifier, one per
        box or region of a detector or a segmenter): in one call for a classifier (a batch
        gives the same maps as one image at a time), else, or when the batch fails (to find the
        culprit), one image at a time."""
        if not idx:
            return []
        ex, target = self.explainers[method], self.job.target
        if len(idx) > 1 and self.model.task == "classify":
            with contextlib.suppress(Exception):  # then one by one, to find the image at fault
                return [(i, [e]) for i, e in
                        zip(idx, ex.explain([images[i] for i in idx], target=target))]
        out = []
        for i in idx:
            try:
                found = ex.explain([images[i]], target=target)
            except Exception as err:  # noqa: BLE001 - an image this method cannot explain
                errors.append(store.error_row(keys[i], method, "explain", err))
                continue
            out.append((i, found))
        return out

    def _pngs(self, key: str, image: np.ndarray, e, k: int) -> dict[str, str]:
        if self.job.render is None:
            return {}
        folder = self.out / store.PNG
        folder.mkdir(parents=True, exist_ok=True)
        stem = target_stem(stem_of(key, self.job.shared_stems), e, k, self.job.target)
        return write_explanation_pngs(folder, stem, image, e, self.job.render)


def _numba_threads(threads: int) -> None:
    """Parallel perturbation kernels (on machines of 8 cores or more) use the actor's share of the
    cores, not all of them: one actor per CPU would otherwise start a thread per core each."""
    try:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    except (ImportError, ValueError):
        pass
