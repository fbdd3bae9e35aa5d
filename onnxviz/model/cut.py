"""Gradients with respect to a layer, for many seeds of few images: the graph cut at the layer.

A CAM of K boxes (ODAM, Grad-CAM of each detection) or of K classes of one photo differentiates
K scores of the *same* image with respect to a layer. The gradient graph of the whole model runs
the forward K times for that; yet only the layers after the cut depend on the seed. Here the
model runs once per distinct image up to the cut (:meth:`onnxviz.Model.run`), and a gradient
graph of the *suffix* alone (the nodes that both depend on the differentiated layers and lead to
the score) runs on the K rows: its inputs are the cut tensors, each image's row repeated.

The result is the same function of the same numbers as the whole gradient graph's (the forward
of the suffix reads the activations the prefix computed, and the backward stops at the layers
anyway); ``tests/model/test_cut.py`` checks it against the uncut graph row by row.

The cut is used only where it is plain: a float graph (its gradient source is the file itself),
no rule set or reference pass, no control-flow node after the cut, and every tensor crossing
the cut a float tensor with the batch first. Elsewhere :func:`cut_gradients` answers None and
:func:`onnxviz.model.grad.gradients` runs the whole gradient graph, as before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from .. import runtime
from .grad import cpu_only, tensor_types

_LOCK = threading.Lock()
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}


@dataclass
class Cut:
    """The suffix graph of a cut and what crosses it.

    Attributes:
        frontier: tensors the prefix computes and the suffix reads (its graph inputs).
        prefix_exposed: exposed tensors the suffix does not compute (read from the prefix run).
        gm: the suffix's :class:`onnxviz.autodiff.GradientModel`.
        sess: its ONNX Runtime session.
    """

    frontier: list
    prefix_exposed: list
    gm: object
    sess: object


def _batch_first(model, tensor: str, types: dict) -> tuple | None:
    """The shape of ``tensor`` when it is a float tensor whose first axis is the batch."""
    if types.get(tensor) not in _FLOATS:
        return None
    shape = tuple(model.shape_of(tensor))
    if len(shape) < 2 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        return None
    first = shape[0]
    if first == "N" or (first == model.input.batch and not isinstance(first, int)):
        return shape
    if model.fixed_batch and first == 1:
        return shape
    return None


def plan(model, of: str, score: str, wrt: tuple, expose: tuple) -> Cut | None:
    """The cut of ``model`` at ``wrt`` for the score tensors ``of`` (differentiated) and
    ``score`` (returned), or None where the cut does not apply (see the module doc)."""
    proto = model.proto
    g = proto.graph
    nodes = list(g.node)
    inputs = {i.name for i in g.input}
    if any(w in inputs or w in (of, score) for w in wrt):
        return None  # an input gradient, or the score's own: nothing to cut
    tainted, after = set(wrt), set()
    for i, n in enumerate(nodes):  # nodes are in topological order (ONNX requires it)
        if any(t in tainted for t in n.input):
            after.add(i)
            tainted.update(o for o in n.output if o)
    if of not in tainted or score not in tainted:
        return None
    inside = [e for e in expose if e in tainted and e not in wrt]
    need, before = {of, score, *inside}, set()
    for i in range(len(nodes) - 1, -1, -1):
        if any(o in need for o in nodes[i].output):
            before.add(i)
            need.update(t for t in nodes[i].input if t)
    suffix = after & before
    # constants the suffix reads (Constant nodes, shapes of initializers) come along
    dynamic = set(inputs)
    for i, n in enumerate(nodes):
        if any(t in dynamic for t in n.input):
            dynamic.update(o for o in n.output if o)
        elif i in before:
            suffix.add(i)
    inits = {t.name: t for t in g.initializer}
    types = tensor_types(proto)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    while True:  # the small integer tensors a suffix reads (shapes) come along with their nodes
        made = {o for i in suffix for o in nodes[i].output if o}
        frontier = list(dict.fromkeys(
            t for i in sorted(suffix) for t in nodes[i].input
            if t and t not in made and t not in inits))
        shapes = {t: _batch_first(model, t, types) for t in frontier}
        pulled = {producer[t] for t, s in shapes.items() if s is None and t in producer}
        if not pulled:
            break
        suffix |= pulled
    if any(s is None or (t in inputs and t != model.input.name) for t, s in shapes.items()):
        return None  # a tensor without the batch first, or an input onnxviz does not feed
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for i in suffix for a in nodes[i].attribute):
        return None  # a subgraph may read outer names its node's inputs do not list
    batch = "N" if not model.fixed_batch else 1
    used = {t for i in suffix for t in nodes[i].input}
    graph = helper.make_graph(
        [nodes[i] for i in sorted(suffix)], "onnxviz_cut",
        [helper.make_tensor_value_info(t, types[t], [batch, *shapes[t][1:]]) for t in frontier],
        [helper.make_tensor_value_info(t, types.get(t, onnx.TensorProto.FLOAT), None)
         for t in dict.fromkeys([of, score])],
        [inits[t] for t in inits if t in used])
    graph.value_info.extend(vi for vi in g.value_info if vi.name in made)
    sub = helper.make_model(graph, opset_imports=list(proto.opset_import))
    sub.ir_version = proto.ir_version
    from ..autodiff import gradient_model

    gm = gradient_model(sub, of=of, wrt=list(wrt), expose=inside, cpu=cpu_only(model),
                        facts=model.shape_facts())
    sess = runtime.session(gm.model, providers=model.providers, threads=model.threads)
    prefix_exposed = [e for e in expose if e not in inside]
    return Cut(frontier, prefix_exposed, gm, sess)


def distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)``: the index of each distinct row of ``x`` and, per row, which."""
    keys: dict = {}
    first, inverse = [], np.empty(len(x), np.int64)
    for i in range(len(x)):
        k = x[i].tobytes()
        j = keys.get(k)
        if j is None:
            j = keys[k] = len(first)
            first.append(i)
        inverse[i] = j
    return np.asarray(first, np.int64), inverse


def cut_gradients(model, x, seed, of: str, score: str, wrt: tuple, expose: tuple,
                  step: int | None):
    """``(score, grads, exposed)`` through the cut (the last two by tensor name), or None where
    the cut does not apply or would not save a forward (the images are distinct)."""
    if len(x) < 2 or model.input.name in wrt or model.gradient_source() is not model.proto:
        return None  # checked before comparing rows: input gradients never cut
    first, inverse = distinct_rows(x)
    if len(first) == len(x):
        return None
    key = (of, score, wrt, expose)
    with _LOCK:
        cache = model.__dict__.setdefault("_cut_cache", {})
    if key not in cache:
        try:
            found = plan(model, of, score, wrt, expose)
        except Exception:  # noqa: BLE001 - a suffix the autodiff or ONNX Runtime refuses: the
            found = None  # whole gradient graph gives the same numbers, or says what is wrong
        with _LOCK:
            cache[key] = found
    cut = cache[key]
    if cut is None:
        return None
    name = model.input.name  # read by the suffix only through its Shape (a batch size)
    pre = model.run(x[first], [t for t in (*cut.frontier, *cut.prefix_exposed) if t != name])
    feeds = {t: x if t == name else pre[t][inverse] for t in cut.frontier}
    feeds[cut.gm.seed] = seed
    gm = cut.gm
    outs = list(dict.fromkeys([score, *(gm.grads[w] for w in wrt), *gm.exposed.values()]))
    res = dict(zip(outs, runtime.run_batched(cut.sess, feeds, outs, step, model.fixed_batch)))
    grads = {w: res[gm.grads[w]] for w in wrt}
    exposed = {e: res[n] for e, n in gm.exposed.items()}
    exposed.update({e: pre[e][inverse] for e in cut.prefix_exposed})
    return res[score], grads, exposed
