"""What the perturbation explainers share: geometry, scores, targets and the streamed run.

Perturbations are defined in pixel space (RGB, 0..255) and written straight into the model's
input tensor: the image and the fill are preprocessed once, and since the model's preprocessing is
a per-pixel affine map, pasting or blending preprocessed values equals preprocessing the pasted or
blended pixels (exactly for pasting, to float rounding for blending).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import TargetError
from ...perturb import baseline, parse_fill, stream
from ...perturb.fill import NAMED
from .._checks import check_choice
from ..base import Timer
from ..baselines import reference

from ..ranges import SCORES  # noqa: E402,F401


@dataclass
class Geometry:
    """Where the image lives in the model input.

    Attributes:
        size: (H, W) of the explained image (the square for a flattened input).
        sample_shape: one sample as the kernels see it: (C, H, W) or (H, W, C).
        channels_last: the model is NHWC.
        dtype: the model input dtype.
    """

    size: tuple[int, int]
    sample_shape: tuple[int, int, int]
    channels_last: bool
    dtype: np.dtype


def geometry(model) -> Geometry:
    spec = model.input
    size = tuple(spec.flat_size or spec.size)
    last = spec.layout == "NHWC"
    shape = (*size, spec.channels) if last else (spec.channels, *size)
    # kernels fill float32 batches; the model casts them to its input dtype (float16 files)
    dtype = np.dtype(spec.dtype) if spec.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    return Geometry(size, shape, last, dtype)


def as_list(images) -> list:
    """A list of images (one array or path becomes a list of one)."""
    return list(images) if isinstance(images, (list, tuple)) else [images]


def pixels_of(model, images, geo: Geometry) -> np.ndarray:
    """(N, H, W, 3) uint8 pixels at the explained resolution."""
    px = model.to_pixels(as_list(images))
    return px.reshape(px.shape[0], *geo.size, 3)


def to_input(model, pixels: np.ndarray, geo: Geometry) -> np.ndarray:
    """One (H, W, 3) pixel image (uint8 or float 0..255) -> one sample in kernel layout."""
    spec = model.input
    px = np.asarray(pixels)[None]
    if spec.flat_size:
        px = px.reshape(1, 1, -1, 3)
    x = model.normalize(px)[0]
    return np.ascontiguousarray(x.reshape(geo.sample_shape), dtype=geo.dtype)


class Fill:
    """What hidden pixels show, the same for every perturbation method (occlusion, RISE, LIME,
    KernelSHAP) and checked by the same code: a word of :data:`onnxviz.perturb.fill.NAMED`, a grey
    level or a colour (pixels, 0..255), ``"zero"`` (the zero model input, Captum's default), a
    model-space tensor of the input's shape (pasted as it is, as Captum's ``baselines``), or a
    pixel image (an array or an image file, preprocessed like the image); see
    :mod:`onnxviz.explainers.baselines`.
    """

    def __init__(self, model, value, geo: Geometry, option: str = "fill"):
        self.model, self.geo = model, geo
        ref = reference(model, value, option, tuple(NAMED))
        self.value = parse_fill(value) if ref is None else None
        self.fixed = None if ref is None else self._fixed(ref)

    def _fixed(self, ref) -> np.ndarray:
        geo = self.geo
        if ref.kind == "pixels":
            return to_input(self.model, ref.value.reshape(*geo.size, 3), geo)
        return np.ascontiguousarray(ref.value.reshape(geo.sample_shape), dtype=geo.dtype)

    def sample(self, pixels: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
        """The fill for one image as one sample in kernel layout (model space); ``segments``:
        LIME's superpixels, which ``"mean"`` fills each with its own mean colour."""
        if self.fixed is not None:
            return self.fixed
        return to_input(self.model, baseline(pixels, self.value, segments=segments), self.geo)


def check_score(score: str) -> str:
    """``score`` if it is one of :data:`SCORES` (else :class:`OptionError`)."""
    check_choice("score", score, SCORES)
    return score


def explain_each(model, images, target, geo: Geometry, one, prepare=tuple) -> list:
    """The explainers' ``explain``: ``one(pixels, target, *prepare())`` per image, timed.

    Args:
        model: the :class:`onnxviz.Model`.
        images: one image or a list (arrays or paths).
        target: one target for all images or one per image (``None`` = top-1).
        geo: the model's :class:`Geometry`.
        one: ``(pixels (H, W, 3), target, *prepared) -> Explanation`` for one image.
        prepare: work shared by all images, timed as "prepare"; its tuple goes to ``one``.

    Returns:
        the explanations, each with its share of the shared "prepare" time added.
    """
    images = as_list(images)
    targets = targets_per_image(target, len(images))
    timer = Timer()
    with timer("prepare"):
        pixels = pixels_of(model, images, geo)
        shared = prepare()
    return share_timings([one(px, t, *shared) for px, t in zip(pixels, targets)], timer)


def score_transform(model, score: str):
    """scores (n, K) -> the explained quantity: softmax probabilities or logits, float32 (as the
    gradient methods explain them, :func:`.._gradient.explained`)."""
    from .._gradient import explained

    return lambda s: np.asarray(explained(model, s, score), np.float32)


def targets_per_image(target, n: int) -> list:
    if isinstance(target, (list, tuple, np.ndarray)):
        if len(target) != n:
            raise TargetError(f"{len(target)} targets given for {n} images")
        return list(target)
    return [target] * n


def resolve(model, target, row: np.ndarray) -> int:
    """The class to explain for one image from its unperturbed scores ``row`` (K,)."""
    return int(model.resolve_targets([target], row[None])[0])


class Slot:
    """One reusable batch: the model input buffer plus optional per-sample masks."""

    def __init__(self, n: int, geo: Geometry, masks: bool = False):
        self.x = np.empty((n, *geo.sample_shape), geo.dtype)
        self.masks = np.empty((n, *geo.size), np.float32) if masks else None


def run_set(model, total, batch_size, geo, fill, consume, *, score, timer: Timer, progress=False,
            desc="", masks=False):
    """Stream ``total`` samples of one perturbation set through ``model``.

    ``fill(start, stop, slot)`` writes samples into ``slot`` (worker thread);
    ``consume(start, stop, slot, scores)`` receives the explained scores (n, K) in order.
    """
    spec = model.input
    transform = score_transform(model, score)

    def timed_fill(start, stop, slot):
        with timer("generate"):
            fill(start, stop, slot)

    def evaluate(n, slot):
        with timer("forward"):
            x = slot.x[:n].reshape(n, *spec.shape)
            return transform(model.forward(x, batch_size=n))

    def timed_consume(start, stop, slot, scores):
        with timer("aggregate"):
            consume(start, stop, slot, scores)

    batch_size = model.fit_batch(batch_size, what=f"a {desc or 'perturbation'} batch")
    bar, on_batch = _progress(progress, total, desc)
    try:
        stream(total, batch_size, lambda n: Slot(n, geo, masks), timed_fill, evaluate,
               timed_consume, on_batch=on_batch)
    finally:
        if bar is not None:
            bar.close()


def _progress(progress, total, desc):
    """``progress``: False, True (a tqdm bar) or a callable ``f(done, total)``."""
    if callable(progress):
        done = [0]

        def call(n):
            done[0] += n
            progress(done[0], total)

        return None, call
    if not progress:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", leave=False)
    return bar, bar.update


class TargetScores:
    """Collects one target column per sample; the target is resolved from sample 0's scores."""

    def __init__(self, model, target, total: int):
        self.model, self.target = model, target
        self.values = np.empty(total, np.float64)
        self.index: int | None = None

    def add(self, start, stop, scores):
        if start == 0:
            self.index = resolve(self.model, self.target, scores[0])
        self.values[start:stop] = scores[:, self.index]


def share_timings(explanations: list, timer: Timer) -> list:
    """Add the per-call stages of ``timer`` (divided among the images) to each explanation's."""
    shared = timer.result(len(explanations))
    shared.pop("total")
    for e in explanations:
        for k, v in shared.items():
            e.timings[k] = e.timings.get(k, 0.0) + v
        e.timings["total"] = e.timings.get("total", 0.0) + sum(shared.values())
    return explanations
