"""The driver of a Ray run: check everything here, read with Ray Data, explain in an actor pool.

:func:`explain_dataset` loads the model once on the driver (a bad model, option, layer or target is
an error before any work), puts the model bytes in the object store once, and streams the images
through :class:`~onnxviz.distributed.worker.ExplainBatch` actors. The actors write the results
(:mod:`onnxviz.distributed.store`); the driver only counts the small status rows they return.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..results import PNGS, Render, out_dir
from . import DistributedError, require_ray, store
from .cluster import connected
from .sources import Plan, plan_sources
from .worker import ExplainBatch, Job

#: Where Ray's own log lines go (in the output folder) unless --verbose.
RAY_LOG = "ray.log"


@dataclass
class RunSummary:
    """What one :func:`explain_dataset` call did.

    Attributes:
        out: the output folder.
        methods: the methods run.
        explained: rows this run added to the explanations table (a detector's: one per box).
        errors: rows this run added to the errors table.
        done: image x method results of this run, explained or refused (a detector's boxes of
            one image and method count once): what the rates count.
        already: rows (image x method) that were written by an earlier run and skipped.
        seconds: wall time of the Ray part (reading, explaining, writing).
        first_results: seconds until the first batch came back (starting the actors, mostly).
        first_rows: the image x method results of that first batch.
        workers: per actor (``node-ip:pid``), its peak resident memory in bytes.
    """

    out: str
    methods: list[str]
    explained: int = 0
    errors: int = 0
    done: int = 0
    already: int = 0
    seconds: float = 0.0
    first_results: float = 0.0
    first_rows: int = 0
    workers: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        """Images (of every method) explained or refused per second by this run."""
        n = self.done / max(1, len(self.methods))
        return n / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_images_per_s(self) -> float:
        """The same once the first batch is back: the pool's pace without its start."""
        n = (self.done - self.first_rows) / max(1, len(self.methods))
        busy = self.seconds - self.first_results
        return n / busy if n > 0 and busy > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "images_per_s": round(self.images_per_s, 3),
                "steady_images_per_s": round(self.steady_images_per_s, 3)}

    def line(self) -> str:
        """One line for the CLI."""
        peak = max(self.workers.values(), default=0) / 2**20
        return (f"{self.out}: {self.explained} rows explained, {self.errors} in errors, "
                f"{self.already} already there; {self.seconds:.1f} s, "
                f"{self.images_per_s:.1f} images/s on {len(self.workers)} workers "
                f"(peak {peak:.0f} MB each at most)")


def explain_dataset(model, source, *, out, methods="gradcam", options: dict | None = None,
                    target=None, preprocess=None, labels=None, input: str | None = None,
                    output: str | None = None, gradients: str | None = None,
                    model_batch_size: int | None = None, threads: int | None = None,
                    address: str | None = None, workers: int | None = None, batch_size: int = 16,
                    render: Render | None = PNGS, retry_errors: bool = False,
                    progress: bool = True, memory: int | None = None,
                    verbose: bool = False, task: str | None = None,
                    layout: str | None = None, nms: dict | None = None) -> RunSummary:
    """Explain every image of ``source`` with every method on a Ray cluster; results to ``out``.

    Args:
        model: path of the ONNX file (its external data is inlined), or its bytes.
        source: a folder, an image path or URI (``s3://...``), a list of those, or a
            ``ray.data.Dataset`` with a ``path`` column (the image's key) and a ``bytes`` (encoded
            file) or ``image`` (decoded array) column, as ``read_binary_files`` and
            ``read_images`` make them with ``include_paths=True``.
        out: output folder, one every node can write (local, or a shared volume on a cluster).
        methods: a method, a comma list, ``all`` (those that apply to the model) or a list.
        options: per method, its keyword options (``{"occlusion": {"patch": 8}}``).
        target: class to explain (index or label); None: each image's top-1 class.
        preprocess, labels, input, output, gradients, task, layout: as :func:`onnxviz.load`
            takes them.
        model_batch_size: images per ONNX Runtime call (``onnxviz.load``'s ``batch_size``).
        threads: ONNX Runtime intra-op threads and CPUs of each actor (default 1 CPU each).
        address: Ray cluster to join; None: the one this process joined, ``RAY_ADDRESS``, the
            one ``ray start`` runs on this machine, or a new local cluster (shut down when done).
        workers: actors in the pool; None: as many as the cluster's CPUs allow.
        batch_size: images per actor call (and per Parquet part file).
        render: how to draw the PNGs (the CLI's defaults); None writes no PNG.
        retry_errors: remove the errors table first, so those images are tried again.
        progress: show Ray Data's progress bars.
        verbose: show Ray's own logs (its INFO lines, the workers' output); by default they go
            to ``out/ray.log`` and Ray's session folder, and only onnxviz's lines reach the
            terminal.
        memory: the memory budget of each actor in bytes (:mod:`onnxviz.limits`); None: each
            actor's default (a share of its node's memory).
        nms: a detector's ``score_threshold``, ``iou_threshold``, ``max_detections``: a row per
            image, box and method (a segmenter: per image, class region and method).

    Returns:
        A :class:`RunSummary`.

    Raises:
        DistributedError: Ray missing, no cluster at ``address``, ``out`` holding another run.
        OnnxvizError: a bad model, method, option, layer or target (before any work).
    """
    ray = require_ray()
    nms = dict(nms or {})
    data, model_, names, opts = _prepare(model, methods, options, target, preprocess, labels,
                                         input, output, gradients, model_batch_size,
                                         {"task": task, "layout": layout}, nms)
    out_dir = _out_folder(out)
    load = {"preprocess": preprocess, "labels": model_.labels if labels is not None else None,
            "input": input, "output": output, "gradients": gradients,
            "batch_size": model_batch_size, "task": task, "layout": layout}
    manifest = {"onnxviz": _version(), "model_sha256": hashlib.sha256(data).hexdigest(),
                "methods": names, "options": _canonical(opts), "target": target,
                "load": _canonical({**load, "labels": labels}),
                "render": asdict(render) if render else None, **({"nms": nms} if nms else {})}
    key = store.check_manifest(out_dir, manifest)
    store.clean(out_dir)
    if retry_errors:
        store.drop_errors(out_dir)
    done = store.done_keys(out_dir)
    summary = RunSummary(out=str(out_dir), methods=names,
                         already=sum(len(v & set(names)) for v in done.values()))
    plan = plan_sources(source, done, names, batch_size)
    if plan.missing:
        lost = _write_not_read(out_dir, key, plan.missing, names, done, "file not found")
        summary.errors += lost
        summary.done += lost
    job = Job(methods=tuple(names), options=opts, target=target, load=load, threads=threads,
              out=str(out_dir), config_key=key, render=render, scheme=plan.scheme,
              shared_stems=plan.shared_stems, memory=memory, nms=nms)
    t0 = time.perf_counter()
    seen: set[str] = set()
    if not plan.empty:
        with connected(ray, address, progress, None if verbose else out_dir / RAY_LOG):
            ds = _pipeline(ray, plan, job, data, workers, threads, batch_size)
            try:
                for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    if not summary.first_results:
                        summary.first_results = time.perf_counter() - t0
                        summary.first_rows = _pairs(batch)
                    _count(summary, batch, seen if plan.expected is not None else None)
            except ray.exceptions.RayError as e:  # a failure no retry mends: the write, a bug
                raise DistributedError(f"the Ray job failed: {_cause(e)} (what was written "
                                       "stays; a rerun goes on from there)") from None
        # every batch is written: a temporary file left now is a killed actor's (Ray retried
        # its batch in another process, under another temporary name)
        store.clean(out_dir)
    summary.seconds = time.perf_counter() - t0
    if plan.expected is not None:  # listed files Ray Data could not read
        lost = [k for k in plan.expected if k not in seen]
        unread = _write_not_read(out_dir, key, lost, names, done,
                                 "not read (missing, or unreadable by Ray Data)")
        summary.errors += unread
        summary.done += unread
    (out_dir / store.SUMMARY).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _prepare(model, methods, options, target, preprocess, labels, input, output, gradients,
             model_batch_size, kind=None, nms=None):
    """Model bytes, the driver's model, method names and per-method options, all checked."""
    from .. import load
    from ..explainers.dense import explainer
    from ..explainers.options import for_model, known_options, parse_methods, with_progress
    from ..model import loading

    proto = loading.read(model)  # a path's external data comes inline
    try:
        data = proto.SerializeToString()
    except ValueError:
        raise DistributedError("the model is over 2 GB serialized; the Ray engine sends the "
                               "model through the object store as one protobuf") from None
    m = load(data, preprocess=preprocess, labels=labels, input=input, output=output,
             gradients=gradients, batch_size=model_batch_size, **(kind or {}))
    names = for_model(parse_methods(methods), methods, m)
    options = dict(options or {})
    opts = {n: with_progress(n, known_options(n, dict(options.get(n, {}))), False)
            for n in names}
    gray = np.full((*m.input.size, 3), 128, np.uint8)
    for n in names:  # a bad layer, option value or target fails here, not in every actor
        ex = explainer(m, n, opts[n], nms)
        if m.task == "classify":  # (a gray picture has no box or region to explain)
            ex.explain([gray], target=target)
    return data, m, names, opts


def _out_folder(out) -> Path:
    return out_dir(out).resolve()


def _pipeline(ray, plan: Plan, job: Job, data: bytes, workers, threads, batch_size):
    """The Ray Data pipeline: read, then ``map_batches`` on an actor pool."""
    cpus = float(threads or 1)
    most = int(workers) if workers else max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
    most = min(most, plan.blocks or most)  # no more actors than there are batches to give them
    if workers:
        pool = ray.data.ActorPoolStrategy(size=most)
    else:
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=most)
    refs = [ray.put(data), ray.put(plan.skip)]  # the model goes to the object store once
    ds = plan.read(ray, most)  # one reader per actor keeps them fed
    return ds.map_batches(ExplainBatch, fn_constructor_args=(job, refs), batch_size=batch_size,
                          batch_format="numpy", compute=pool, num_cpus=cpus)


def _pairs(batch: dict) -> int:
    """The image x method results in a batch of status rows (a detector's boxes count once)."""
    return len(set(zip(batch["image"].tolist(), batch["method"].tolist())))


def _count(summary: RunSummary, batch: dict, seen: set | None) -> None:
    status = batch["status"]
    summary.explained += int(np.sum(status == "ok"))
    summary.errors += int(np.sum(status == "error"))
    summary.done += _pairs(batch)
    for w, rss in zip(batch["worker"], batch["peak_rss"]):
        summary.workers[w] = max(summary.workers.get(w, 0), int(rss))
    if seen is not None:
        seen.update(batch["image"].tolist())


def _write_not_read(out: Path, key: str, images: list[str], names: list[str], done: dict,
                    why: str) -> int:
    """Errors rows (stage ``read``) for the methods not yet done of images that never reached an
    actor; returns the count."""
    rows = [store.error_row(i, m, "read", why) for i in images for m in names
            if m not in done.get(i, ())]
    if not rows:
        return 0
    store.write_part(out / store.ERRORS, store.part_name(key + "\0read", images),
                     store.error_table(rows))
    return len(rows)


def _cause(err: BaseException) -> str:
    """The last line of the actor's traceback (its error and message), out of Ray's wrapping."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    last = lines[-1] if lines else type(err).__name__
    return re.sub(r"^[\w.]*\.(\w+: )", r"\1", last)[:500]


def _canonical(value):
    """JSON-able, order-independent form of options (arrays by shape and hash)."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"array": list(value.shape), "dtype": str(value.dtype),
                "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _version() -> str:
    from .. import __version__

    return __version__
