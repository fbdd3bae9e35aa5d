"""What to explain: the score tensor of a graph, and the class index of each image."""

from __future__ import annotations

import numpy as np
import onnx

from ..errors import OptionError, TargetError, close_matches

_PASS_THROUGH = ("Flatten", "Reshape", "Identity", "Squeeze")


def find_score(proto: onnx.ModelProto, output: str | None = None) -> tuple[str, str | None, str]:
    """(score tensor, probability tensor or None, graph output) of a classifier.

    The graph output is ``output`` or the first graph output. Walking back from it through
    Flatten/Reshape/Identity/Squeeze, a Softmax makes its input the score (the logits) and its
    output the probabilities.
    """
    outputs = [o.name for o in proto.graph.output]
    if output is None:
        output = outputs[0]
    elif output not in outputs:
        raise OptionError(f"unknown output {output!r}; "
                          f"the model's outputs are: {', '.join(outputs)}")
    producer = {o: n for n in proto.graph.node for o in n.output}
    name = output
    while name in producer:
        node = producer[name]
        if node.op_type in ("Softmax", "LogSoftmax"):
            return node.input[0], (name if node.op_type == "Softmax" else None), output
        if node.op_type not in _PASS_THROUGH:
            break
        name = node.input[0]
    return output, None, output


def resolve(target, scores: np.ndarray, num_classes: int, labels: list[str] | None) -> np.ndarray:
    """Class indices, one per row of ``scores`` (see :meth:`Model.resolve_targets`)."""
    scores = np.asarray(scores)
    n = scores.shape[0]
    if isinstance(target, np.ndarray) and target.ndim == 0:
        target = target.item()
    if isinstance(target, (list, tuple, np.ndarray)):
        if len(target) != n:
            raise TargetError(f"{len(target)} targets given for {n} images")
        return np.asarray([_one(t, scores[i], num_classes, labels) for i, t in enumerate(target)],
                          np.int64)
    if target is None:
        return np.argmax(scores.reshape(n, -1), axis=1).astype(np.int64)
    return np.full(n, _one(target, None, num_classes, labels), np.int64)


def _one(t, row, num_classes: int, labels) -> int:
    if t is None:
        return int(np.argmax(row))
    if isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)):
        if not 0 <= int(t) < num_classes:
            raise TargetError(f"class index {int(t)} is out of range 0..{num_classes - 1}")
        return int(t)
    if isinstance(t, str):
        if t.lstrip("-").isascii() and t.lstrip("-").isdigit():
            return _one(int(t), row, num_classes, labels)
        if not labels:
            raise TargetError(f"the model has no labels; give the target as a class index, "
                              f"not {t!r}")
        if t in labels:
            return labels.index(t)
        low = [lab.lower() for lab in labels]
        if t.lower() in low:
            return low.index(t.lower())
        near = close_matches(t, labels)
        hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
        raise TargetError(f"unknown label {t!r}{hint}")
    raise TargetError(f"a target must be a class index or a label, got {type(t).__name__}")
