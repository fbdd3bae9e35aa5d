"""Deletion and insertion (Petsiuk, Das & Saenko, "RISE", BMVC 2018, sec. 4.1,
https://arxiv.org/abs/1806.07421).

Deletion removes pixels from the image in order of attribution, most relevant first, and records
the explained score after each step; a faithful map makes the score fall fast (low area under the
curve). Insertion starts from a fill (a blurred copy by default) and puts the image's pixels back
in the same order; a faithful map makes the score rise fast (high area).

Step ``k`` of ``steps`` has ``floor(k * H * W / steps)`` pixels replaced (all channels of a
pixel together), so the curve has ``steps + 1`` points from the untouched start (k = 0) to the
finished image, and the area is the trapezoidal rule over x = k / steps in [0, 1]. Samples are
written by :func:`onnxviz.metrics.kernels.ordered_batch` and streamed through the model in
batches: memory holds two batches whatever the number of steps.
"""

from __future__ import annotations

import numpy as np

from ..explainers._checks import check_positive_ints
from ..perturb import baseline
from ._common import heat_of, model_sample, order_of, pixels_of, score_samples
from .kernels import ordered_batch
from .registry import Score, metric

PETSIUK = "Petsiuk et al. 2018, https://arxiv.org/abs/1806.07421"


def auc(y) -> float:
    """Area under a curve sampled at evenly spaced x from 0 to 1 (trapezoidal rule)."""
    y = np.asarray(y, np.float64)
    if y.size < 2:
        return float(y[0]) if y.size else float("nan")
    return float(((y[1:] + y[:-1]) / 2.0).sum() / (y.size - 1))


def counts(n_pixels: int, steps: int) -> np.ndarray:
    """Pixels replaced at steps 0..steps: ``floor(k * n_pixels / steps)``."""
    return (np.arange(steps + 1, dtype=np.int64) * n_pixels) // steps


def curve(model, explanation, *, insert: bool, steps: int, fill, score: str,
          batch_size: int) -> Score:
    """The deletion (``insert=False``) or insertion curve of one explanation and its area."""
    check_positive_ints(steps=steps, batch_size=batch_size)
    heat = heat_of(explanation)
    pixels = pixels_of(model, explanation)
    image = model_sample(model, pixels)
    substrate = model_sample(model, baseline(pixels, fill))
    source, target = (substrate, image) if insert else (image, substrate)
    order = order_of(heat)
    per_step = counts(heat.size, min(steps, heat.size))
    channels_last = model.input.layout == "NHWC"

    def fill_batch(start, stop, x):
        ordered_batch(source, target, order, per_step, start, x, channels_last)

    y = score_samples(model, per_step.size, fill_batch, int(explanation.target), score=score,
                      batch_size=batch_size)
    x = per_step / heat.size
    name = "insertion" if insert else "deletion"
    return Score(name, auc(y), {"x": x, "y": y, "fill": fill if isinstance(fill, str) else
                                list(np.ravel(fill)), "score": score})


@metric("deletion", "area under the score as the most relevant pixels are removed first",
        higher_is_better=False, paper=PETSIUK)
def deletion(model, explanation, mask=None, *, steps: int = 50, fill="black",
             score: str = "probability", batch_size: int = 32) -> Score:
    """Deletion AUC of one explanation.

    Args:
        model: the :class:`onnxviz.Model` that was explained.
        explanation: an :class:`onnxviz.Explanation` (its ``image`` and ``target`` are used).
        mask: unused.
        steps: points of the curve after the start (each removes ``H * W / steps`` pixels).
        fill: what removed pixels become (see :func:`onnxviz.perturb.parse_fill`): the paper
            sets them to zero in the network's input; ``black`` is zero pixels.
        score: ``probability`` (softmax, the paper's) or ``logit``.
        batch_size: samples per ONNX Runtime call.

    Returns:
        :class:`Score` with the area in [0, 1] for probabilities; details ``x`` (fraction
        removed) and ``y`` (score) of the curve.
    """
    return curve(model, explanation, insert=False, steps=steps, fill=fill, score=score,
                 batch_size=batch_size)


@metric("insertion", "area under the score as the most relevant pixels are put back first",
        higher_is_better=True, paper=PETSIUK)
def insertion(model, explanation, mask=None, *, steps: int = 50, fill="blur",
              score: str = "probability", batch_size: int = 32) -> Score:
    """Insertion AUC of one explanation.

    Args:
        model: the :class:`onnxviz.Model` that was explained.
        explanation: an :class:`onnxviz.Explanation`.
        mask: unused.
        steps: points of the curve after the start.
        fill: the image the curve starts from (the paper: a blurred copy of the image).
        score: ``probability`` or ``logit``.
        batch_size: samples per ONNX Runtime call.

    Returns:
        :class:`Score` with the area and the curve (``x``: fraction inserted, ``y``: score).
    """
    return curve(model, explanation, insert=True, steps=steps, fill=fill, score=score,
                 batch_size=batch_size)
