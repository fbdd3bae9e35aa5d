"""Shared helpers of the autodiff tests: inline graphs, ORT runs, central finite differences."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from onnxviz.autodiff import gradient_model


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def spread(rng, shape, lo=-1.0, hi=1.0) -> np.ndarray:
    """Distinct values evenly spaced in [lo, hi] in random order: no ties, no exact zeros."""
    n = int(np.prod(shape))
    v = (np.arange(n) + 0.5 + 0.37 / max(n, 1)) / n
    return (lo + (hi - lo) * rng.permutation(v)).reshape(shape)


def run_grads(model, of: str, wrt: list[str], feeds: dict, seed: np.ndarray, expose=(), cpu=False):
    """(value of `of`, {wrt: gradient}, {exposed: value}) through gradient_model on ORT."""
    g = gradient_model(model, of=of, wrt=wrt, expose=expose, cpu=cpu)
    sess = session(g.model)
    names = [g.grads[w] for w in wrt] + [g.exposed[e] for e in expose]
    outs = sess.run(names, {**feeds, g.seed: seed})
    grads = dict(zip(wrt, outs[: len(wrt)]))
    exposed = dict(zip(expose, outs[len(wrt):]))
    return grads, exposed


def finite_diff(sess, of: str, feeds: dict, name: str, seed: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of sum(seed * of) with respect to feed ``name``, element by element."""
    x = feeds[name]
    out = np.zeros(x.shape, np.float64)
    flat = out.reshape(-1)
    for i in range(x.size):
        vals = []
        for sign in (1, -1):
            xp = x.copy()
            xp.reshape(-1)[i] += sign * eps
            y = sess.run([of], {**feeds, name: xp})[0]
            vals.append(float(np.sum(seed.astype(np.float64) * y.astype(np.float64))))
        flat[i] = (vals[0] - vals[1]) / (2 * eps)
    return out


def make_model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 21 else 10
    return m


NP = {TensorProto.DOUBLE: np.float64, TensorProto.FLOAT: np.float32}
