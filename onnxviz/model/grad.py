"""Gradients of a loaded :class:`onnxviz.Model`: the runtime side of :mod:`onnxviz.autodiff`.

``Model.gradients`` and ``Model.grad`` delegate here. The rewritten gradient graph and its ONNX
Runtime session are built once per (model, of, wrt, expose) and cached on the model, so repeated
explanations only pay for running it.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import runtime
from .._once import KeyedLock
from ..errors import OptionError

_LOCK = threading.Lock()
_BUILDING = KeyedLock()


def gradient_session(model, of: str, wrt: tuple, expose: tuple = (), rules: str | None = None):
    """The cached ``(GradientModel, session)`` of ``model`` for these names and rule set."""
    key = (of, tuple(wrt), tuple(expose), rules)
    with _LOCK:
        hit = model.__dict__.setdefault("_gradient_cache", {}).get(key)
    if hit is not None:
        return hit
    with _BUILDING((id(model), key)):  # threads asking at once: one builds, the others wait
        with _LOCK:
            cache = model.__dict__.setdefault("_gradient_cache", {})
            hit = cache.get(key)
        if hit is None:
            hit = _build(model, of, wrt, expose, rules)
            with _LOCK:
                cache[key] = hit
    return hit


def _build(model, of: str, wrt: tuple, expose: tuple, rules: str | None):
    from ..autodiff import gradient_model

    _check_float(model, wrt)
    cpu = cpu_only(model)
    facts = model.shape_facts() if hasattr(model, "shape_facts") else None
    # int8 / float16 files: the graph their gradient mode defines (onnxviz.model.precision)
    src = model.gradient_source() if hasattr(model, "gradient_source") else model.proto
    gm = gradient_model(src, of=of, wrt=list(wrt), expose=list(expose), cpu=cpu,
                        facts=facts, rules=rules)
    sess = runtime.session(gm.model, providers=model.providers, threads=model.threads)
    return gm, sess


_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16


def cpu_only(model) -> bool:
    """Whether ``model`` runs on ONNX Runtime's CPU provider alone (the gradient graph's CPU
    forms, :func:`onnxviz.autodiff.gradient_model`'s ``cpu``)."""
    providers = list(model.providers or runtime.default_providers())
    return all((p[0] if isinstance(p, tuple) else p) == "CPUExecutionProvider" for p in providers)


def tensor_types(proto) -> dict:
    """Element type of every tensor the graph declares (value infos, inputs, outputs,
    initializers), by name."""
    g = proto.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*g.value_info, *g.input, *g.output)
             if vi.type.HasField("tensor_type")}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _check_float(model, wrt) -> None:
    """Gradients exist only for real-valued tensors: an int8 quantizer output is refused by name
    (ONNX Runtime would fail on the gradient's output type)."""
    types = tensor_types(model.proto)
    for w in wrt:
        t = types.get(w)
        if t and t not in _FLOAT_TYPES:
            from onnx import helper

            raise OptionError(
                f"tensor {w!r} holds {helper.tensor_dtype_to_np_dtype(t)} values (a quantizer's "
                "integer output?): gradients are taken with respect to real-valued tensors; "
                "choose the float tensor before the QuantizeLinear or after the DequantizeLinear")


def _tensor(model, name: str) -> str:
    """A tensor name for ``name`` (a tensor name already, or a layer's friendly name)."""
    return model._tensor_name(name) if hasattr(model, "_tensor_name") else name


def gradients(model, x, seed, wrt, expose=(), *, rules=None, reference=None):
    """Gradients of ``sum(seed * score)`` with respect to tensors ``wrt``, in one batched run.

    Args:
        model: the :class:`onnxviz.Model`.
        x: (N, ...) model input in model layout.
        seed: (N, K) weights of the scores (one row per image; a one-hot row selects a class).
        wrt: tensor or layer names (the input's name for input gradients).
        expose: tensor or layer names whose values are returned as well.
        rules: a rule set of :mod:`onnxviz.autodiff.rulesets` (a modified gradient), or ``None``.
        reference: (N, ...) reference inputs, model layout, for a rule set that runs a reference
            pass (DeepLIFT's); ``wrt`` is then the model input only.

    Returns:
        ``(grads, exposed, scores)``: ``{name as given: (N, ...) array}`` for ``wrt`` and
        ``expose``, and the (N, K) float32 scores.
    """
    wrt = [wrt] if isinstance(wrt, str) else list(wrt)
    expose = [expose] if isinstance(expose, str) else list(expose)
    x = model._check_x(x) if hasattr(model, "_check_x") else np.asarray(x)
    score = model.score_output
    # the differentiated tensor: the score, or the logit before its output quantizers
    of = model.gradient_of() if hasattr(model, "gradient_of") else score
    w_names = [_tensor(model, w) for w in wrt]
    e_names = [_tensor(model, e) for e in expose]
    seed = np.asarray(seed, dtype=np.float32)
    if seed.shape[0] != len(x):
        raise OptionError(f"seed has {seed.shape[0]} rows for {len(x)} images")
    of_shape = model.shape_of(of) if hasattr(model, "shape_of") else ()
    if len(of_shape) > 2 and all(isinstance(d, int) and d > 0 for d in of_shape[1:]):
        seed = seed.reshape((len(x), *of_shape[1:]))
    x_in = x.astype(np.float32, copy=False) if x.dtype == np.float16 else x  # upcast graph
    step = model.fit_batch(None, grad=True, what="a gradient run") if hasattr(
        model, "fit_batch") else getattr(model, "batch_size", None)
    cut = None
    if rules is None and reference is None and hasattr(model, "fixed_batch"):
        from .cut import cut_gradients  # the same image for many seeds: its prefix runs once

        cut = cut_gradients(model, x_in, seed, of, score, tuple(dict.fromkeys(w_names)),
                            tuple(dict.fromkeys(e_names)), step)
    if cut is not None:
        s, g, e = cut
        return ({w: g[n] for w, n in zip(wrt, w_names)},
                {k: e[n] for k, n in zip(expose, e_names)},
                s.reshape(len(x), -1).astype(np.float32, copy=False))
    outputs = {o.name for o in model.proto.graph.output}
    e_all = tuple(dict.fromkeys(e_names + ([] if score in outputs else [score])))
    gm, sess = gradient_session(model, of, tuple(dict.fromkeys(w_names)), e_all, rules)
    score_out = score if score in outputs else gm.exposed[score]
    outs = [score_out, *(gm.grads[w] for w in dict.fromkeys(w_names)),
            *(gm.exposed[e] for e in dict.fromkeys(e_names))]
    feeds = {model.input.name: x_in, gm.seed: seed}
    if gm.references:
        if set(gm.references) != {model.input.name} or reference is None:
            raise OptionError(f"the rule set {rules!r} compares with a reference input: give "
                              "reference=, shaped like x, and differentiate w.r.t. the input only")
        ref = np.asarray(reference, dtype=x_in.dtype)
        if ref.shape != x_in.shape:
            raise OptionError(f"reference has shape {ref.shape}, the input {x_in.shape}")
        feeds[gm.references[model.input.name]] = ref
    res = runtime.run_batched(sess, feeds, outs,
                              step, getattr(model, "fixed_batch", False))
    by = dict(zip(outs, res))
    grads = {w: by[gm.grads[n]] for w, n in zip(wrt, w_names)}
    exposed = {e: by[gm.exposed[n]] for e, n in zip(expose, e_names)}
    scores = by[score_out].reshape(len(x), -1).astype(np.float32, copy=False)
    return grads, exposed, scores


def grad(model, x, target, wrt=None) -> np.ndarray:
    """d score[target] / d ``wrt`` per image (``wrt`` defaults to the input), model layout.

    Args:
        model: the :class:`onnxviz.Model`.
        x: (N, ...) model input in model layout (one unbatched input is accepted too).
        target: class index, label, list of them (one per image), or None for each image's top-1.
        wrt: tensor or layer name; None for the model input.

    Returns:
        The gradient, shaped like ``wrt`` (N, ...).
    """
    x = model._check_x(x) if hasattr(model, "_check_x") else np.asarray(x)
    wrt = wrt or model.input.name
    if target is None or (isinstance(target, (list, tuple)) and any(t is None for t in target)):
        scores = model.forward(x)
    else:
        scores = np.zeros((len(x), model.num_classes), np.float32)
    targets = np.asarray(model.resolve_targets(target, scores), dtype=np.int64).reshape(-1)
    if targets.size == 1 and len(x) > 1:
        targets = np.repeat(targets, len(x))
    seed = np.zeros((len(x), model.num_classes), np.float32)
    seed[np.arange(len(x)), targets] = 1.0
    grads, _, _ = gradients(model, x, seed, [wrt])
    return grads[wrt]
