"""The model front door: :func:`load` an ONNX classifier into a :class:`Model`.

    >>> import onnxviz as ov
    >>> m = ov.load(ov.bundled_model())
    >>> m.predict("skimage:chelsea", top=1)[0].label
    'Egyptian cat'
"""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np

from .. import limits, runtime
from ..autodiff.graph import toposort
from ..errors import ExecutionError, ModelError, OnnxvizError, guard
from . import budget, loading
from . import labels as _labels
from . import preprocessing as _pre
from .core import Model, Prediction
from .inputs import InputSpec, find_input, probe
from .layers import Layer
from .preprocessing import PRESETS, Preprocessing
from . import nms as _nms
from . import task as _task
from .targets import find_score

__all__ = ["InputSpec", "Layer", "Model", "PRESETS", "Prediction", "Preprocessing", "load",
           "load_like", "logit_twin"]


@guard("loading the model")
def load(source, *, preprocess=None, labels=None, input: str | None = None,
         output: str | None = None, providers=None, threads: int | None = None,
         batch_size: int | None = None, gradients: str | None = None, task: str | None = None,
         layout: str | None = None) -> Model:
    """Load, check and normalize an ONNX image model: a classifier, a detector or a segmenter.

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
            estimator through QuantizeLinear/DynamicQuantizeLinear; default for dynamic
            quantization), ``"ste-logit"`` (the same, of the logit before its output quantizer;
            default for QDQ) or ``"surrogate"`` (the float graph on dequantized weights; default
            for QOperator files). See :mod:`onnxviz.model.precision`; ``Model.gradient_mode``.
        task: ``"classify"``, ``"detect"`` or ``"segment"``; default (None or ``"auto"``): the
            file's ``onnxviz.task`` metadata, else the output's shape (:mod:`.task`).
        layout: a detector's raw head layout (``"yolov8"``: ``[N, 4+C, A]``; ``"yolov5"``:
            ``[N, A, 5+C]``; ``"boxes"``: a graph ending in NonMaxSuppression, explained on the
            tensors NMS reads, :mod:`.nms`); default: the metadata, else ``boxes`` for a graph
            with NonMaxSuppression, else the shape.

    Returns:
        The :class:`Model`.

    Raises:
        ModelError: the file is missing, empty, truncated, not ONNX, invalid or unsafe.
        UnsupportedOpError: ONNX Runtime cannot run an operator (names the op and node).
    """
    threads = limits.check_threads(threads)
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
    nms = _nms.prepare(proto, task, layout, output)
    if nms is not None:  # post-NMS outputs: explained on the head NMS reads (layout "boxes")
        output, task, layout = nms.head, "detect", "boxes"
        notes.append(f"layout 'boxes': explains {nms.head!r}, the boxes {nms.boxes!r} and scores "
                     f"{nms.scores!r} that NonMaxSuppression {nms.node!r} reads")
    spec = find_input(proto, input)
    budget.refuse_endless_loops(proto)
    probes: dict[int, tuple] = {}  # sessions of the load-time runs, dropped after loading

    def probe_session(p, size):
        hit = probes.get(id(p))
        if hit is None or hit[0] is not p:
            q = budget.resized(p, spec, size) if size != spec.size else p
            hit = probes[id(p)] = (p, runtime.session(q, providers=providers, threads=threads,
                                                      cache=False, arena=False))
        return hit[1]

    def runs_at(p, size):
        try:
            xs = probe(spec, 1, size=size)
            limits.run_limited(probe_session(p, size), None, {spec.name: xs})
            return True
        except ExecutionError:  # stopped by the time limit: the model would never load
            raise
        except Exception:
            return False
        finally:
            probes.clear()

    plan = budget.probe_plan(proto, spec, runs_at)
    if plan.note:
        notes.append(plan.note)
    x = probe(spec, plan.batches, size=plan.size)

    def run(p, sel=1):
        xs = x[sel[0]:sel[1]] if isinstance(sel, tuple) else x[:sel]
        try:
            return limits.run_limited(probe_session(p, plan.size), None, {spec.name: xs})
        except ExecutionError:  # stopped by the time limit: the model would never load
            raise
        except Exception:
            return None

    old = loading.default_opset(proto)
    proto, upgraded = loading.upgrade_opset(proto, run)
    if upgraded:
        notes.append(f"upgraded opset {old} -> {loading.default_opset(proto)}")
    if plan.batches > 1:
        proto, fixed = loading.make_batch_symbolic(proto, spec.name, run)
        if spec.batch == 1 and not fixed:
            notes.append("made the fixed batch size 1 symbolic")
    else:
        fixed = True
    proto = loading.infer_shapes(proto)
    spec = find_input(proto, spec.name)

    score, prob, out = find_score(proto, output)
    # the session of the final graph: raises UnsupportedOpError for ops ONNX Runtime cannot run
    sess = runtime.session(proto, providers=providers, threads=threads)
    first, fixed = _first_run(sess if plan.size == spec.size else probe_session(proto, plan.size),
                              proto, out, spec, x, fixed)
    probes.clear()
    kind = _task.resolve(proto, first.shape, out, task, layout)
    num_classes = kind.num_classes if first.ndim > 1 else 1
    channels = spec.channels
    label_list, label_source = _labels.resolve(proto, num_classes, labels)
    pre = _pre.resolve(proto, preprocess, channels=channels)
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else ""
    model = Model(proto, spec, score_output=score, prob_output=prob, num_classes=num_classes,
                  labels=label_list, labels_source=label_source, preprocessing=pre,
                  fixed_batch=fixed, providers=providers, threads=threads, batch_size=batch_size,
                  notes=notes, source=name)
    model._sessions[id(proto)] = (proto, sess)  # already built: no second serialization
    model.task, model.layout, model.nms = kind.name, kind.layout, nms
    model.gradient_mode = gradients  # checks the mode against the file's form
    if model.precision.quantization == "dynamic" and not model.fixed_batch:
        # DynamicQuantizeLinear's scale spans the whole batch: one image per run keeps each
        # image's scores its own (what the file gives it alone)
        model.fixed_batch = True
        notes.append("dynamic quantization: images run one at a time (scales span the batch)")
    return model


def load_like(model: Model, proto) -> Model:
    """``proto`` (a rewritten copy of ``model``'s graph: same input, outputs and layers) loaded
    as ``model`` was: its preprocessing, labels, input, score output, runtime settings, task and
    layout."""
    p = model.preprocessing
    pre = {"mean": list(p.mean), "std": list(p.std), "scale": p.scale,
           "channel_order": p.channel_order}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once for the model itself
        return load(proto, preprocess=pre, labels=model.labels, input=model.input.name,
                    providers=model.providers, threads=model.threads,
                    batch_size=model.batch_size, task=model.task, layout=model.layout)


def logit_twin(model: Model) -> Model:
    """A detector whose head's last Sigmoids are read as the identity
    (:func:`onnxviz.model.saturation.head_sigmoids`): its class scores are the logits of
    ``model``'s confidences, which do not saturate at 1 (the score a box's explanation
    perturbs and differentiates); ``model`` itself when it has no such Sigmoid. Built once."""
    from .saturation import logits_for_gradients

    def build():
        src = logits_for_gradients(model.proto, model.score_output)
        return model if src is model.proto else load_like(model, src)

    twin = model.__dict__.get("_onnxviz_logit_twin")
    if twin is None:
        with model._first_use("_onnxviz_logit_twin"):
            twin = model.__dict__.get("_onnxviz_logit_twin")
            if twin is None:
                twin = build()
                model.__dict__["_onnxviz_logit_twin"] = twin
    return twin


def _first_run(sess, proto, out: str, spec, x: np.ndarray, fixed: bool):
    """The score output for one probe image, checked: one float tensor, finite, and one row per
    image. A model whose batch-2 output is not two rows (it mixes or drops images) runs one image
    at a time (``fixed``), so each image's scores are its own."""
    try:
        first = limits.run_limited(sess, [out], {spec.name: x[:1]})[0]
    except OnnxvizError:
        raise
    except Exception as e:
        raise ModelError(f"ONNX Runtime cannot run the model: {str(e).splitlines()[0]}") from None
    if not isinstance(first, np.ndarray) or first.dtype.kind not in "fiu" or first.size == 0:
        kind = type(first).__name__ if not isinstance(first, np.ndarray) else \
            f"{first.dtype} tensor of shape {first.shape}"
        raise ModelError(f"output {out!r} is a {kind}; onnxviz explains models whose output is "
                         "one numeric tensor of class scores (choose another with output=)")
    if first.ndim == 0 or first.shape[0] != 1:
        raise ModelError(f"output {out!r} has shape {first.shape} for one image; onnxviz needs "
                         "one row of scores per image (batch first)")
    if not fixed:
        try:
            two = limits.run_limited(sess, [out], {spec.name: x[:2]})[0]
        except OnnxvizError:
            raise
        except Exception:
            two = None
        dynamic = any(n.op_type == "DynamicQuantizeLinear" for n in proto.graph.node)
        finite = np.abs(first[np.isfinite(first)])
        tol = 1e-3 * (1.0 + float(np.max(finite, initial=0.0)))
        if two is None or two.ndim == 0 or two.shape[0] != 2 or two.shape[1:] != first.shape[1:] \
                or (not dynamic and not np.allclose(two[:1], first, rtol=1e-3, atol=tol,
                                                    equal_nan=True)):
            warnings.warn(f"the model's output {out!r} does not have one row per image at batch "
                          "2 (it mixes or drops images across the batch); images run one at a "
                          "time", stacklevel=4)
            fixed = True
    return first, fixed
