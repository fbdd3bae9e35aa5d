"""The model front door: :func:`load` an ONNX classifier into a :class:`Model`.

    >>> import onnxviz as ov
    >>> m = ov.load(ov.bundled_model())
    >>> m.predict("skimage:chelsea", top=1)[0].label
    'Egyptian cat'
"""

from __future__ import annotations

import copy
import os

import numpy as np

from .. import runtime
from ..autodiff.graph import toposort
from ..errors import ModelError
from . import labels as _labels
from . import loading
from . import preprocessing as _pre
from .core import Model, Prediction
from .inputs import InputSpec, find_input, probe
from .layers import Layer
from .preprocessing import PRESETS, Preprocessing
from .targets import find_score

__all__ = ["InputSpec", "Layer", "Model", "PRESETS", "Prediction", "Preprocessing", "load"]


def load(source, *, preprocess=None, labels=None, input: str | None = None,
         output: str | None = None, providers=None, threads: int | None = None,
         batch_size: int | None = None, gradients: str | None = None) -> Model:
    """Load, check and normalize an ONNX image classifier.

    Args:
        source: a path, the model's bytes, or an ``onnx.ModelProto``.
        preprocess: preset name (``imagenet``, ``tf``, ``caffe``, ``unit``, ``raw``), a dict
            ``{"mean", "std", "scale", "channel_order"}`` or JSON text; default: the model's
            metadata, ``raw`` for MATLAB files, else a guess with a warning.
        labels: list of class names, a labels file (one per line), or ``"imagenet"``; default:
            metadata ``onnxviz.labels``, ImageNet-1k for 1000 classes, else none.
        input: the image input's name, needed when the model has several inputs.
        output: the graph output to explain, default the first.
        providers: ONNX Runtime execution providers (default CUDA when available, else CPU).
        threads: ONNX Runtime intra-op threads.
        batch_size: images per ONNX Runtime call (default 32).
        gradients: how gradients of an int8 model are defined: ``"ste"`` (straight-through
            estimator through QuantizeLinear/DynamicQuantizeLinear; default for QDQ and dynamic
            quantization) or ``"surrogate"`` (the float graph on dequantized weights; default for
            QOperator files). See :mod:`onnxviz.model.precision`; ``Model.gradient_mode``.

    Returns:
        The :class:`Model`.

    Raises:
        ModelError: the file is missing, empty, truncated, not ONNX, invalid or unsafe.
        UnsupportedOpError: ONNX Runtime cannot run an operator (names the op and node).
    """
    proto = loading.read(source)
    notes = []
    nodes = list(proto.graph.node)
    made = {o: k for k, n in enumerate(nodes) for o in n.output}
    if any(made.get(i, -1) > k for k, n in enumerate(nodes) for i in n.input):
        # a consumer before its producer (converters write such files): sort them
        order = [copy.deepcopy(n) for n in toposort(nodes)]
        del proto.graph.node[:]
        proto.graph.node.extend(order)
        notes.append("sorted the nodes topologically")
    removed = loading.remove_initializer_inputs(proto)
    if removed:
        notes.append(f"removed {removed} initializers listed as graph inputs (IR 3)")
    unused = loading.remove_unused_inputs(proto)
    if unused:
        notes.append(f"removed {len(unused)} graph inputs that no node reads ({', '.join(unused)})")
    loading.check(proto)
    loading.refuse_lost_constants(proto, input)
    spec = find_input(proto, input)
    x = probe(spec, 2)

    def run(p, sel=1):
        xs = x[sel[0]:sel[1]] if isinstance(sel, tuple) else x[:sel]
        try:
            sess = runtime.session(p, providers=providers, threads=threads)
            return sess.run(None, {spec.name: xs})
        except Exception:
            return None

    old = loading.default_opset(proto)
    proto, upgraded = loading.upgrade_opset(proto, run)
    if upgraded:
        notes.append(f"upgraded opset {old} -> {loading.default_opset(proto)}")
    proto, fixed = loading.make_batch_symbolic(proto, spec.name, run)
    if spec.batch == 1 and not fixed:
        notes.append("made the fixed batch size 1 symbolic")
    proto = loading.infer_shapes(proto)
    spec = find_input(proto, spec.name)

    score, prob, out = find_score(proto, output)
    # the session of the final graph: raises UnsupportedOpError for ops ONNX Runtime cannot run
    sess = runtime.session(proto, providers=providers, threads=threads)
    try:
        first = sess.run([out], {spec.name: x[:1]})[0]
    except Exception as e:
        raise ModelError(f"ONNX Runtime cannot run the model: {str(e).splitlines()[0]}") from None
    num_classes = int(np.prod(first.shape[1:])) if first.ndim > 1 else 1
    channels = spec.channels
    label_list, label_source = _labels.resolve(proto, num_classes, labels)
    pre = _pre.resolve(proto, preprocess, channels=channels)
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else ""
    model = Model(proto, spec, score_output=score, prob_output=prob, num_classes=num_classes,
                  labels=label_list, labels_source=label_source, preprocessing=pre,
                  fixed_batch=fixed, providers=providers, threads=threads, batch_size=batch_size,
                  notes=notes, source=name)
    model._sessions[id(proto)] = (proto, sess)  # already built: no second serialization
    model.gradient_mode = gradients  # checks the mode against the file's form
    if model.precision.quantization == "dynamic" and not model.fixed_batch:
        # DynamicQuantizeLinear's scale spans the whole batch: one image per run keeps each
        # image's scores its own (what the file gives it alone)
        model.fixed_batch = True
        notes.append("dynamic quantization: images run one at a time (scales span the batch)")
    return model
