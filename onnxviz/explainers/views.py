"""A detector or a segmenter seen as a classifier of its K targets (boxes or regions): the views
every classifier method explains them through (:mod:`onnxviz.explainers.boxes` picks the
targets and makes the results)."""

from __future__ import annotations

import numpy as np

from ..errors import TargetError


class LinearView:
    """A detector or segmenter seen as a classifier of K target scores, each a fixed linear
    function of the raw output: ``score_k = sum(weights[k] * raw)`` (a one-hot row picks a box's
    anchor score; a mask row sums a class's logits over a region).

    Args:
        model: the detector or segmenter (:class:`onnxviz.Model`).
        weights: (K, size of one image's raw output) float32.
        names: the K names the view gives its classes.
    """

    task = "classify"
    prob_output = None
    layout = None

    def __init__(self, model, weights: np.ndarray, names):
        self._model = model
        self.weights = np.ascontiguousarray(weights, np.float32)
        self.labels = list(names)
        self.num_classes = len(self.labels)

    def __getattr__(self, name):  # everything else is the model's (input, layers, runs)
        return getattr(self._model, name)

    @property
    def base(self):
        """The detector or segmenter seen."""
        return self._model

    def rebased(self, model):
        """The same view of another model with the same outputs (a randomised copy)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._model = model
        return view

    @property
    def is_regression(self) -> bool:
        """The target scores are the model's own numbers (a confidence, a sum of logits): never
        softmaxed again."""
        return True

    def label_of(self, index: int) -> str:
        index = int(index)
        if not 0 <= index < self.num_classes:
            raise TargetError(f"target {index} is out of range 0..{self.num_classes - 1}")
        return self.labels[index]

    def resolve_targets(self, target, scores) -> np.ndarray:
        n = len(scores)
        items = list(target) if isinstance(target, (list, tuple, np.ndarray)) else [target] * n
        out = [0 if t is None else int(t) for t in items]
        for t in out:
            self.label_of(t)
        return np.asarray(out, np.int64)

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        """The K target scores of raw outputs (N, ...) of the model: (N, K) float32 (what a
        runner of the whole graph, such as incremental occlusion's, hands back)."""
        return (np.asarray(raw).reshape(len(raw), -1).astype(np.float64)
                @ self.weights.T.astype(np.float64)).astype(np.float32)

    def forward(self, x, batch_size=None) -> np.ndarray:
        """The K target scores of each input row, (N, K) float32."""
        m = self._model
        return self.from_raw(m.run(x, [m.score_output], batch_size)[m.score_output])

    def probabilities(self, scores):
        return np.asarray(scores, np.float32)

    def gradients(self, x, seed, wrt, expose=(), *, rules=None, reference=None):
        """Gradients of ``sum(seed * target scores)``: the seed spread on the raw output."""
        raw_seed = np.asarray(seed, np.float32) @ self.weights
        kw = {"rules": rules} if rules is not None else {}
        if reference is not None:
            kw["reference"] = reference
        grads, exposed, scores = self._model.gradients(x, raw_seed, wrt, expose, **kw)
        return grads, exposed, (scores.astype(np.float64) @ self.weights.T.astype(np.float64)
                                ).astype(np.float32)


class BoxView(LinearView):
    """A detector seen as a classifier of its K target boxes (see the module doc): each row of
    its weights picks one or two elements of the raw head (a box's score, or a coordinate such
    as ``x0 = cx - w / 2``), so the scores and the seeds are read and written by index (no
    dense (K, 4+C x A) matrix: a YOLOv8 head has 705,600 elements).

    Args:
        model: the detector (:class:`onnxviz.Model` with ``task == "detect"``).
        anchors: (K,) anchor index of each target.
        classes: (K,) class of each target.
        names: the K names the view gives its classes.
        output: what of each box is its score: ``"score"`` (its class score) or a coordinate
            (:data:`onnxviz.detection.layouts.BOX_OUTPUTS`).
    """

    def __init__(self, model, anchors, classes, names, output: str = "score"):
        from ..detection.layouts import output_terms

        self.anchors = np.asarray(anchors, np.int64)
        self.classes = np.asarray(classes, np.int64)
        self.output = output
        shape = tuple(model.shape_of(model.score_output)[1:])
        terms = [output_terms(model.layout, int(a), int(c), model.num_classes, output)
                 for a, c in zip(self.anchors, self.classes)]
        width = max((len(t) for t in terms), default=1)
        self._flat = np.zeros((len(terms), width), np.int64)  # (K, T) elements of the head
        self._coef = np.zeros((len(terms), width), np.float32)  # their coefficients (0: unused)
        for k, t in enumerate(terms):
            for j, (index, c) in enumerate(t):
                self._flat[k, j] = np.ravel_multi_index(index, shape)
                self._coef[k, j] = c
        self._size = int(np.prod(shape))
        super().__init__(model, np.zeros((len(terms), 0), np.float32), names)

    def _pick(self, flat_raw: np.ndarray) -> np.ndarray:
        picked = flat_raw[:, self._flat]  # (N, K, T)
        if self._flat.shape[1] == 1:
            return picked[:, :, 0].astype(np.float32, copy=False)  # the element itself, exactly
        return (picked.astype(np.float64) * self._coef).sum(axis=2).astype(np.float32)

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw)
        return self._pick(raw.reshape(len(raw), -1))

    def gradients(self, x, seed, wrt, expose=(), *, rules=None, reference=None):
        seed = np.asarray(seed, np.float32)
        raw_seed = np.zeros((len(seed), self._size), np.float32)
        np.add.at(raw_seed, (slice(None), self._flat), seed[:, :, None] * self._coef)
        kw = {"rules": rules} if rules is not None else {}
        if reference is not None:
            kw["reference"] = reference
        grads, exposed, scores = self._model.gradients(x, raw_seed, wrt, expose, **kw)
        return grads, exposed, self._pick(scores)


class RegionView(LinearView):
    """A segmenter seen as a classifier of K regions: ``score_k`` is the sum of class ``c_k``'s
    logits over mask ``k`` (pytorch-grad-cam's ``SemanticSegmentationTarget``, Seg-Grad-CAM's
    region score, Vinogradova et al. 2020). Weights are a class channel and an (h, w) mask at the
    output's resolution, so each row is one channel's mask."""

    def __init__(self, model, classes, masks: np.ndarray, names):
        self.classes = np.asarray(classes, np.int64)
        shape = tuple(model.shape_of(model.score_output)[1:])  # (C, h, w)
        self._masks = np.asarray(masks, np.float32).reshape(len(self.classes), *shape[1:])
        self._shape = shape
        super().__init__(model, np.zeros((len(self.classes), 0), np.float32), names)

    def _pick(self, raw: np.ndarray) -> np.ndarray:
        raw = raw.reshape(len(raw), *self._shape)
        return np.stack([(raw[:, c] * m).sum(axis=(1, 2)) for c, m in
                         zip(self.classes, self._masks)], axis=1).astype(np.float32)

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        return self._pick(np.asarray(raw))

    def gradients(self, x, seed, wrt, expose=(), *, rules=None, reference=None):
        seed = np.asarray(seed, np.float32)
        raw_seed = np.zeros((len(seed), *self._shape), np.float32)
        for k, (c, mask) in enumerate(zip(self.classes, self._masks)):
            raw_seed[:, c] += seed[:, k, None, None] * mask
        kw = {"rules": rules} if rules is not None else {}
        if reference is not None:
            kw["reference"] = reference
        grads, exposed, scores = self._model.gradients(x, raw_seed.reshape(len(seed), -1), wrt,
                                                       expose, **kw)
        return grads, exposed, self._pick(scores)
