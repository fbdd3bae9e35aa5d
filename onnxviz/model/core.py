"""The :class:`Model`: a checked, normalized ONNX classifier with its input, preprocessing, labels."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from .. import runtime
from .._once import KeyedLock
from ..errors import NonFiniteWarning, OptionError, TargetError, guard
from . import targets as _targets
from .inputs import InputSpec, dims
from .numeric import NumericForm
from .preprocessing import Preprocessing
from .views import GraphViews


@dataclass(frozen=True)
class Prediction:
    """One ranked class.

    Attributes:
        index: class index.
        label: class name (``"class N"`` without labels).
        score: the score output (logit) for this class.
        probability: softmax of the scores (the model's own Softmax output when it has one);
            None for regression models.
    """

    index: int
    label: str
    score: float
    probability: float | None


class Model(NumericForm, GraphViews):
    """A loaded image classifier; build it with :func:`onnxviz.load`.

    Attributes:
        proto: the normalized ``onnx.ModelProto`` (original outputs kept).
        input: the :class:`InputSpec` of the image input.
        score_output: the tensor explained by default (logits before a trailing Softmax).
        prob_output: the Softmax output, or None.
        num_classes: number of scores per image.
        labels: class names, or None.
        labels_source: where the labels came from.
        preprocessing: the :class:`Preprocessing` from pixels to model input.
        fixed_batch: the graph only runs batch 1 (the runtime feeds one image at a time).
        notes: what the loader changed (for ``onnxviz inspect``).
    """

    #: ``classify``, ``detect`` or ``segment`` (:mod:`onnxviz.model.task`); set by ``load``.
    task: str = "classify"
    #: a detector's raw head layout (``yolov8``, ``yolov5``, ``boxes``), else None.
    layout: str | None = None
    #: for the ``boxes`` layout, where the explained head comes from (:class:`.nms.NMSHead`).
    nms = None

    def __init__(self, proto, spec: InputSpec, *, score_output: str, prob_output: str | None,
                 num_classes: int, labels, labels_source: str, preprocessing: Preprocessing,
                 fixed_batch: bool, providers=None, threads=None, batch_size=None, notes=(),
                 source: str = ""):
        self.proto = proto
        self.input = spec
        self.score_output = score_output
        self.prob_output = prob_output
        self.num_classes = int(num_classes)
        self.labels = labels
        self.labels_source = labels_source
        self.preprocessing = preprocessing
        self.fixed_batch = bool(fixed_batch)
        self.providers = providers
        self.threads = threads
        self.batch_size = batch_size
        self.notes = list(notes)
        self.source = source
        self._shapes = {vi.name: tuple(dims(vi)) for vi in (
            *proto.graph.value_info, *proto.graph.input, *proto.graph.output)}
        self._exposed: OrderedDict[tuple[str, ...], onnx.ModelProto] = OrderedDict()
        self._lock = threading.Lock()
        self._first_use = KeyedLock()  # what the model computes on first use, computed once
        self._sessions: dict[int, tuple] = {}
        self._layers: list | None = None
        self._tensors: list | None = None

    def __repr__(self) -> str:
        i = self.input
        what = {"detect": f"a {self.layout} detector of {self.num_classes} classes",
                "segment": f"a segmenter of {self.num_classes} classes"}.get(
                    self.task, f"{self.num_classes} classes")
        return (f"<onnxviz.Model {self.source or 'in-memory'}: input {i.name!r} {i.layout} "
                f"{i.size[0]}x{i.size[1]}x{i.channels}, {what}, "
                f"preprocess={self.preprocessing.name}>")

    # ---- metadata -------------------------------------------------------------------------
    @property
    def producer(self) -> str:
        p = self.proto
        return f"{p.producer_name} {p.producer_version}".strip() or "unknown"

    @property
    def opset(self) -> int:
        from .loading import default_opset

        return default_opset(self.proto)

    @property
    def is_regression(self) -> bool:
        """One score and no Softmax: a regression model (target 0)."""
        return self.num_classes == 1 and self.prob_output is None

    # ---- images -> input ------------------------------------------------------------------
    def to_pixels(self, images) -> np.ndarray:
        """Images (array, path, ``skimage:NAME`` or a list) -> (N, H, W, 3) RGB at input size.

        ``uint8`` when every image has 8 bits; when any is deeper (a 16-bit file, a ``uint16`` or
        float array), float32 on the 0..255 scale at full precision (``read_image(exact=True)``).
        For a flattened input (``input.flat_size``), the result is (N, 1, h*w, 3): each image is
        resized to the square and flattened row by row.
        """
        from ..imageio import read_image, resize

        items = images if _is_list(images) else [images]
        if len(items) == 0:
            raise OptionError("no images given")
        flat = self.input.flat_size
        size = flat or self.input.size
        # uint8 and float32 images stack to float32: one deep image makes the batch exact
        out = np.stack([resize(read_image(item, exact=True), size) for item in items])
        if flat:
            out = out.reshape(len(items), 1, flat[0] * flat[1], 3)
        return out

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB pixels (uint8 or float, 0..255) -> model input in model layout."""
        px = np.asarray(pixels)
        if px.ndim == 3:
            px = px[None]
        if px.ndim != 4 or px.shape[-1] != 3:
            raise OptionError(f"pixels must be (N, H, W, 3) RGB, got shape {px.shape}")
        x = self.preprocessing.apply(px)
        c = self.input.channels
        if c == 1:
            # luminance (ITU-R BT.601) of the normalized channels, the usual gray conversion
            x = x @ np.asarray([0.299, 0.587, 0.114], np.float32)[:, None]
        elif c == 4:
            # RGBA models: a fully opaque alpha channel (255 scaled like the pixels)
            opaque = np.float32(255.0 * self.preprocessing.scale)
            alpha = np.full(x.shape[:3] + (1,), opaque, np.float32)
            x = np.concatenate([x, alpha], axis=-1)
        elif c != 3:
            raise OptionError(f"the model takes {c} channels; give its input tensor directly")
        if self.input.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self.input.dtype)

    @guard("preprocess")
    def preprocess(self, images) -> np.ndarray:
        """``normalize(to_pixels(images))``: images -> model input tensor (model layout)."""
        return self.normalize(self.to_pixels(images))

    # ---- running --------------------------------------------------------------------------
    def session(self, proto=None):
        """The ONNX Runtime session of ``proto`` (default: this model), cached per proto object.

        The cache is by identity so repeated runs do not re-serialize the graph; do not modify a
        proto after running it.
        """
        proto = self.proto if proto is None else proto
        with self._lock:
            hit = self._sessions.get(id(proto))
        if hit is not None and hit[0] is proto:
            return hit[1]
        sess = runtime.session(proto, providers=self.providers, threads=self.threads)  # built once
        with self._lock:
            self._sessions[id(proto)] = (proto, sess)
            while len(self._sessions) > 10:
                self._sessions.pop(next(iter(self._sessions)))
        return sess

    def check_input(self, x) -> np.ndarray:
        """``x`` as a batched model-input array of the input's dtype; OptionError on a bad shape."""
        return self._check_x(x)

    def tensor_name(self, name: str) -> str:
        """The graph tensor a tensor name, layer name or node name refers to (LayerError if none)."""
        return self._tensor_name(name)

    def _check_x(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input.shape and not self.input.dynamic_size:
            raise OptionError(f"input tensor must be (N, {', '.join(map(str, self.input.shape))}) "
                              f"in {self.input.layout} layout, got {x.shape}; "
                              "use model.preprocess(images) to build it")
        return x.astype(self.input.dtype, copy=False)

    @guard("run")
    def run(self, x, outputs: Sequence[str],
            batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Run the model and return any tensors, intermediate ones included.

        Args:
            x: model input (N, ...) in model layout.
            outputs: tensor names (graph outputs or any node output; layer names are accepted).
            batch_size: images per ONNX Runtime call.

        Returns:
            {name as asked: array}.
        """
        x = self._check_x(x)
        names = [self._tensor_name(o) for o in outputs]
        proto = self._with_outputs(tuple(dict.fromkeys(names)))
        sess = self.session(proto)
        uniq = list(dict.fromkeys(names))
        res = runtime.run_batched(sess, {self.input.name: x}, uniq,
                                  self.fit_batch(batch_size, what="a forward run"),
                                  self.fixed_batch)
        # float16 tensors come back as float32 (the values the file computed, widened)
        by = {n: r.astype(np.float32) if r.dtype == np.float16 else r for n, r in zip(uniq, res)}
        return {o: by[n] for o, n in zip(outputs, names)}

    @guard("forward")
    def forward(self, x, batch_size: int | None = None) -> np.ndarray:
        """Model input (N, ...) -> (N, num_classes) float32 scores (logits before a Softmax)."""
        out = self.run(x, [self.score_output], batch_size)[self.score_output]
        return out.reshape(out.shape[0], -1).astype(np.float32, copy=False)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Softmax of ``scores`` when the model ends in Softmax, else the scores unchanged."""
        s = np.asarray(scores, np.float32)
        return s if self.prob_output is None else _softmax(s)

    @guard("predict")
    def predict(self, images, top: int = 5, batch_size: int | None = None, **detection):
        """Top-``top`` classes of each image, highest score first; a detector's detections, a
        segmenter's class map (:mod:`onnxviz.model.dense`).

        Args:
            images: one image (array, path, ``skimage:NAME``) or a list of them.
            top: how many classes per image (classifiers).
            batch_size: images per ONNX Runtime call.
            **detection: a detector's ``score_threshold`` (0.25), ``iou_threshold`` (0.45) and
                ``max_detections`` (300).

        Returns:
            A list of :class:`Prediction` for one image, a list of such lists for a list.
            Probabilities are the softmax of the scores for classifiers (what the model's own
            Softmax computes when it ends in one) and None for regression models (one output).
            A detector gives :class:`onnxviz.detection.Detections` and a segmenter
            :class:`onnxviz.model.dense.Segmentation` per image instead.
        """
        if self.task != "classify":
            from .dense import predict

            return predict(self, images, batch_size=batch_size, **detection)
        if detection:
            raise OptionError(f"{', '.join(detection)}: options of detectors; this model is a "
                              "classifier")
        single = not _is_list(images)
        self.fit_batch(batch_size, what="a forward run")  # refused before reading the images
        scores = self.forward(self.preprocess(images), batch_size)
        if not np.isfinite(scores).all():
            bad = int(np.count_nonzero(~np.isfinite(scores).all(axis=1)))
            warnings.warn(f"the model's scores are NaN or infinite for {bad} of {len(scores)} "
                          "image(s): those predictions are not valid", NonFiniteWarning,
                          stacklevel=3)
        probs = None if self.is_regression else _softmax(scores)
        k = max(1, min(int(top), self.num_classes))
        rows = []
        for n, s in enumerate(scores):
            idx = np.argsort(-s, kind="stable")[:k]
            rows.append([Prediction(int(i), self.label_of(int(i)), float(s[i]),
                                    None if probs is None else float(probs[n, i])) for i in idx])
        return rows[0] if single else rows

    # ---- targets and labels ---------------------------------------------------------------
    def label_of(self, index: int) -> str:
        """The class name of ``index`` (``"class N"`` when the model has no labels)."""
        index = int(index)
        if not 0 <= index < self.num_classes:
            raise TargetError(f"class index {index} is out of range 0..{self.num_classes - 1}")
        if self.labels:
            return self.labels[index]
        return "output" if self.is_regression else f"class {index}"

    def resolve_targets(self, target, scores: np.ndarray) -> np.ndarray:
        """Class indices to explain, one per image.

        Args:
            target: None (each image's top-1), an int, a label string (any case), or a list of
                those (one per image).
            scores: (N, K) scores, used for ``None``.

        Raises:
            TargetError: an index out of range, an unknown label, or a list of the wrong length.
        """
        return _targets.resolve(target, scores, self.num_classes, self.labels)

    # ---- gradients (onnxviz.model.grad, built on onnxviz.autodiff) -------------------------
    @guard("gradients")
    def gradients(self, x, seed, wrt, expose=(), *, rules=None, reference=None):
        """Gradients of ``sum(seed * score)`` w.r.t. tensors ``wrt``: (grads, exposed, scores);
        ``rules`` names a rule set (:mod:`onnxviz.autodiff.rulesets`) for a modified gradient,
        ``reference`` its reference inputs when it needs them (DeepLIFT's)."""
        from . import grad as _grad

        return _grad.gradients(self, x, seed, wrt, expose=expose, rules=rules,
                               reference=reference)

    @guard("grad")
    def grad(self, x, target, wrt=None):
        """d score[target] / d ``wrt`` (the input when None), in model layout."""
        from . import grad as _grad

        return _grad.grad(self, x, target, wrt=wrt)


def _softmax(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, np.float64)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _is_list(images) -> bool:
    """A list/tuple of images, or a 4-D (N, H, W, C) array batch."""
    return isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray)
                                                 and images.ndim == 4)
