"""Constant folding for exported graphs, so shape bookkeeping does not hide the layers.

The TorchScript exporter writes ``nn.ZeroPad2d`` and friends as chains of ``Constant``,
``ConstantOfShape``, ``Concat``, ``Slice`` and ``Reshape`` nodes that compute a ``Pad``'s pads at
run time. Every node whose inputs are all constants is evaluated once here (with the ONNX reference
evaluator) and replaced by an initializer; nodes that read the image (``Shape`` of the input)
stay. Node names and every other node are kept, so results are bit-identical.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

_NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
MAX_FOLDED_ELEMENTS = 1 << 16  # fold bookkeeping, never materialize large tensors


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Returns a copy of ``model`` with constant-only subgraphs replaced by initializers.

    Args:
        model: an ONNX model whose main graph may contain ``Constant`` nodes and nodes computing
            only from constants and initializers.

    Returns:
        The folded copy; unused initializers are dropped.
    """
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    graph = model_copy.graph
    graph_inputs = {i.name for i in graph.input}
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name not in graph_inputs}
    kept, folded = [], {}
    for node in graph.node:
        values = _try_fold(node, consts)
        if values is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            consts[name] = value
            folded[name] = value
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    new_inits = [t for t in graph.initializer if t.name in used or t.name in graph_inputs]
    new_inits += [numpy_helper.from_array(np.asarray(v), name) for name, v in folded.items() if name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    return model_copy


def _try_fold(node: onnx.NodeProto, consts: dict) -> list | None:
    if node.domain not in ("", "ai.onnx") or node.op_type in _NEVER_FOLD:
        return None
    if any(a.type == onnx.AttributeProto.GRAPH for a in node.attribute):
        return None
    if node.op_type != "Constant" and not all(name == "" or name in consts for name in node.input):
        return None
    if node.op_type != "Constant" and not node.input:
        return None
    inputs = [consts[name] for name in node.input if name]
    try:
        outputs = ReferenceEvaluator(node).run(None, dict(zip([n for n in node.input if n], inputs)))
    except Exception:  # an op the reference evaluator lacks: leave the node for the runtime
        return None
    if any(np.asarray(v).size > MAX_FOLDED_ELEMENTS for v in outputs):
        return None
    return [np.asarray(v) for v in outputs]
