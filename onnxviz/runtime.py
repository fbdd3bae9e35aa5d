"""The one place that creates ONNX Runtime sessions and runs them in bounded-memory batches.

Sessions are built with graph optimizations on and intra-/inter-op spinning off, so the cores are
free for Numba and Python work between runs, and CUDA is used when ``onnxruntime-gpu`` and a device
are present. Sessions are cached per (serialized graph, providers, threads); threads asking for one
session at the same time wait for the one that builds it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from ._once import KeyedLock
from .errors import ModelError, OptionError, UnsupportedOpError

_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_SIZE = 16
_LOCK = threading.Lock()
_BUILDING = KeyedLock()

#: Default number of samples per ``InferenceSession.run`` call in :func:`run_batched`.
DEFAULT_BATCH = 32


def clear_cache() -> None:
    """Drop every cached session (their ONNX Runtime memory is freed with them)."""
    with _LOCK:
        _CACHE.clear()


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _options(threads: int | None, arena: bool = True, qdq: bool = False, prepack: bool = True):
    """Session options; ``qdq``: the graph holds QuantizeLinear/DequantizeLinear pairs, which run
    as written (dequantize, float op, quantize: the QDQ format's definition) rather than fused
    into int8 kernels. onnxruntime 1.32's fused kernels get the bundled shapes CNN's QDQ twin
    wrong (logits -4.4/6.1 where the graph gives 42.2/-25.7, its LeakyReLU on the whiteness
    conv); tests/gate's int8 twin shows it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if qdq:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.enable_cpu_mem_arena = arena
    if not prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    if threads is not None:
        from .limits import check_threads

        so.intra_op_num_threads = check_threads(threads)
        so.inter_op_num_threads = 1
    return so


def session(model, providers: Sequence[str] | None = None, threads: int | None = None,
            cache: bool = True, arena: bool = True, prepack: bool = True):
    """An ``onnxruntime.InferenceSession`` for ``model``, cached per graph and options.

    Args:
        model: an ``onnx.ModelProto`` or its serialized bytes.
        providers: execution providers; default CUDA when available, else CPU.
        threads: intra-op thread count; default lets ONNX Runtime choose.
        cache: keep the session for later calls (off for one-off runs such as shape probes).
        arena: keep freed memory for the session's later runs (ONNX Runtime's CPU arena); off for
            one-off runs, whose memory then goes back as soon as each run ends.
        prepack: let ONNX Runtime keep its own re-laid-out copy of the weights (faster batched
            convolutions; off for a session that runs one image now and then, where the copy is
            only memory).

    Returns:
        The (possibly cached) session.

    Raises:
        UnsupportedOpError: ONNX Runtime has no kernel for an operator in the graph.
        ModelError: ONNX Runtime refuses the graph for another reason.
    """
    import onnxruntime as ort

    data = model if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
    providers = list(providers) if providers else default_providers()
    key = (hashlib.sha1(data).hexdigest(), len(data), tuple(providers), threads, arena, prepack)
    if not cache:
        return _build(data, providers, threads, arena, prepack)
    with _BUILDING(key):  # threads asking for the same session at once: one builds it
        with _LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
        sess = _build(data, providers, threads, arena, prepack)
        with _LOCK:
            _CACHE[key] = sess
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return sess


def _build(data: bytes, providers: list, threads: int | None, arena: bool, prepack: bool = True):
    import onnxruntime as ort

    qdq = b"QuantizeLinear" in data and b"DequantizeLinear" in data
    options = _options(threads, arena, qdq, prepack)  # OptionError for a bad thread count
    try:
        data = data if isinstance(data, bytes) else bytes(data)  # a copy only of a bytearray
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise _ort_error(e, data) from None


_NOT_REGISTERED = re.compile(r"([\w.]*):(\w+)\((-?\d+)\) is not a registered function/op")
_NO_KERNEL = re.compile(
    r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'")


def _ort_error(err: Exception, data: bytes) -> ModelError:
    """Turn an ONNX Runtime load failure into an error naming the op and node when possible."""
    msg = str(err)
    found = _NOT_REGISTERED.search(msg)
    if found:
        domain, op = found.group(1), found.group(2)
        where = f" in domain {domain!r}" if domain else ""
        return UnsupportedOpError(op, _node_of(data, op, domain=domain),
                                  why=f"ONNX Runtime does not know this operator{where}")
    found = _NO_KERNEL.search(msg)
    if found:
        op, version, node = found.groups()
        return UnsupportedOpError(op, node or _node_of(data, op),
                                  why=f"ONNX Runtime has no kernel for opset {version} with "
                                      "these input types")
    return ModelError(f"ONNX Runtime cannot load the model: {_first_line(msg)}")


def _node_of(data: bytes, op: str, domain: str | None = None) -> str:
    """Name of the first node running ``op`` (searching subgraphs too), or '?'."""
    proto = onnx.load_from_string(bytes(data))

    def walk(graph):
        for node in graph.node:
            if node.op_type == op and (domain is None or node.domain == domain):
                return node.name or (node.output[0] if node.output else "?")
            for attr in node.attribute:
                for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    hit = walk(g)
                    if hit:
                        return hit
        return None

    return walk(proto.graph) or "?"


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0][:400] if msg.strip() else "unknown error"


def run_batched(
    sess,
    feeds: Mapping[str, np.ndarray],
    outputs: Sequence[str] | None,
    batch_size: int | None = None,
    fixed_batch: bool = False,
) -> list[np.ndarray]:
    """Run ``sess`` over inputs of any length in chunks, concatenating the outputs.

    Args:
        sess: an ``onnxruntime.InferenceSession``.
        feeds: input name -> array whose first axis is the batch; an array whose graph input has no
            batch axis (0-D, or a rank different from the input's) is passed whole to every chunk.
        outputs: output names (``None``: all outputs).
        batch_size: samples per run (default :data:`DEFAULT_BATCH`).
        fixed_batch: the graph only runs batch 1: feed one sample at a time.

    Returns:
        One array per output, the chunks concatenated along axis 0.
    """
    if batch_size is not None and int(batch_size) < 1:
        raise OptionError(f"batch_size must be >= 1, got {batch_size}")
    step = 1 if fixed_batch else int(batch_size or DEFAULT_BATCH)
    ranks = {i.name: len(i.shape) if isinstance(i.shape, list) else None for i in sess.get_inputs()}
    batched, whole = {}, {}
    for name, arr in feeds.items():
        arr = np.asarray(arr)
        rank = ranks.get(name)
        if arr.ndim == 0 or (rank is not None and arr.ndim != rank):
            whole[name] = arr
        else:
            batched[name] = arr
    if not batched:
        return sess.run(outputs, dict(whole))
    n = {a.shape[0] for a in batched.values()}
    if len(n) != 1:
        raise OptionError(f"batched inputs disagree on batch size: {sorted(n)}")
    n = n.pop()
    if n == 0:
        raise OptionError("empty batch: nothing to run")
    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, step):
        feed = {k: np.ascontiguousarray(v[start:start + step]) for k, v in batched.items()}
        feed.update(whole)
        chunks.append(sess.run(outputs, feed))
    if len(chunks) == 1:
        return list(chunks[0])
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]
