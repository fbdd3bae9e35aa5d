"""Pieces the gradient and CAM explainers share: targets, seeds, batched gradients, upsampling."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ._checks import check_choice, check_flags, check_positive  # noqa: F401  (re-exported: G.check_*)


def _needs_scores(target) -> bool:
    if target is None:
        return True
    if isinstance(target, (list, tuple, np.ndarray)):
        return any(t is None for t in target)
    return False


def prepare(model, images, target, batch_size: int | None, timer):
    """The opening of every gradient-family explainer, timed: ``(pixels, x, targets, scores)``
    (pixels at the input size, the model input, and :func:`targets_for`'s result)."""
    with timer("preprocess"):
        pixels = model.to_pixels(images)
        x = model.normalize(pixels)
    with timer("targets"):
        targets, scores = targets_for(model, x, target, batch_size)
    return pixels, x, targets, scores


def targets_for(model, x: np.ndarray, target, batch_size: int | None):
    """Class indices per image and the scores, when the targets need them (``None`` = top-1).

    Returns:
        ``(targets, scores)``; ``scores`` is ``None`` when every target was explicit, so that the
        caller can take the scores from its own gradient run instead of paying a forward pass.
    """
    n = len(x)
    if isinstance(target, (list, tuple, np.ndarray)) and len(target) != n:
        raise OptionError(f"{len(target)} targets for {n} images; give one per image or a single one")
    if _needs_scores(target):
        scores = model.forward(x, batch_size=batch_size)
        return np.asarray(model.resolve_targets(target, scores), dtype=np.int64), scores
    dummy = np.zeros((n, model.num_classes), np.float32)
    return np.asarray(model.resolve_targets(target, dummy), dtype=np.int64), None


#: What a gradient method differentiates: the score before the model's softmax, or its softmax.
from .ranges import SCORES  # noqa: E402,F401  (G.SCORES)


def explained(model, scores: np.ndarray, score: str = "logit") -> np.ndarray:
    """(N, K) scores as the quantity explained: unchanged for ``"logit"`` and for a regression
    model (one output, no Softmax), else their softmax (the model's own probabilities)."""
    if score == "logit" or model.is_regression:
        return scores
    from ..model.core import _softmax

    return _softmax(scores)


def seeds(model, x, targets: np.ndarray, score: str = "logit") -> np.ndarray:
    """The seeds of :func:`gradients` for one batch.

    ``"logit"``: one-hot rows. ``"probability"``: by the chain rule through the softmax
    ``p = softmax(z)``, ``d p_t / d z = p_t (e_t - p)``, so the seed row is that vector at ``x``'s
    scores (one forward run); the gradient is then ``d p_t / d x``.
    """
    if score == "logit" or model.is_regression:
        return one_hot(targets, model.num_classes)
    p = explained(model, model.forward(x), score).astype(np.float64)
    rows = np.arange(len(targets))
    seed = -p[rows, targets][:, None] * p
    seed[rows, targets] += p[rows, targets]
    return seed.astype(np.float32)


def one_hot(targets: np.ndarray, num_classes: int, dtype=np.float32) -> np.ndarray:
    """Seeds selecting one score per row: ``d(sum(seed * scores))`` = d(score[target])."""
    seed = np.zeros((len(targets), num_classes), dtype)
    seed[np.arange(len(targets)), targets] = 1
    return seed


def chunks(n: int, size: int | None):
    """``slice`` objects covering ``range(n)`` in pieces of ``size`` (all at once when None)."""
    size = n if not size else int(size)
    for start in range(0, n, max(size, 1)):
        yield slice(start, min(start + size, n))


def gradients(model, x, targets, wrt, expose=(), batch_size=None, rules=None, reference=None,
              score="logit"):
    """d score[target] / d ``wrt`` per image, plus exposed tensors and the scores, batched.

    Args:
        model: the :class:`onnxviz.Model`.
        x: (N, ...) model input tensor.
        targets: (N,) class indices.
        wrt: tensor names to differentiate with respect to.
        expose: tensor names whose values are returned too.
        batch_size: images per run (all at once when ``None``).
        rules: a rule set of :mod:`onnxviz.autodiff.rulesets` (a modified gradient), or ``None``.
        reference: (N, ...) reference inputs for a rule set that needs them (DeepLIFT's).
        score: ``"logit"`` (the score output) or ``"probability"`` (its softmax, see
            :func:`seeds`).

    Returns:
        ``(grads, exposed, scores)``: dicts of (N, ...) arrays keyed by tensor name, and the
        (N, K) scores, as :func:`explained` gives them for ``score``.
    """
    wrt, expose = list(wrt), list(expose)

    def extra(s):  # models that know no rule sets still take the plain call
        kw = {"rules": rules} if rules is not None else {}
        if reference is not None:
            kw["reference"] = reference[s]
        return kw

    parts = [model.gradients(x[s], seeds(model, x[s], targets[s], score), wrt=wrt, expose=expose,
                             **extra(s))
             for s in chunks(len(x), batch_size)]
    grads = {k: np.concatenate([p[0][k] for p in parts]) for k in wrt}
    exposed = {k: np.concatenate([p[1][k] for p in parts]) for k in expose}
    scores = np.concatenate([p[2] for p in parts])
    return grads, exposed, explained(model, scores, score)


def channels_last(x: np.ndarray, layout: str) -> np.ndarray:
    """A model-layout input-shaped array as (N, H, W, C)."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))) if layout == "NCHW" else x


def image_shaped(model, maps: np.ndarray) -> np.ndarray:
    """(N, H, W, ...) maps over the model input -> over the image: a flattened input (MATLAB's
    ``[1, 1, 1, h*w]``) is folded back to (N, h, w, ...), row by row as ``to_pixels`` flattens."""
    flat = getattr(model.input, "flat_size", None)
    if not flat:
        return maps
    return maps.reshape(len(maps), *flat, *maps.shape[3:])


def upsample(maps: np.ndarray, size) -> np.ndarray:
    """Bilinear resize (half-pixel centres, as ``cv2.INTER_LINEAR``) of (N, h, w) maps to ``size``."""
    import cv2

    h, w = int(size[0]), int(size[1])
    out = np.empty((len(maps), h, w), np.float32)
    for i, m in enumerate(maps):
        out[i] = cv2.resize(np.ascontiguousarray(m, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def reduce_channels(attr: np.ndarray, reduce: str) -> np.ndarray:
    """(N, H, W, C) attributions -> (N, H, W) heatmaps.

    ``"max_abs"``: max over channels of |a| (Simonyan et al. 2014, sec. 3.1); ``"abs"``: sum of |a|;
    ``"signed"``: sum of a.
    """
    if reduce == "max_abs":
        return np.abs(attr).max(axis=-1)
    if reduce == "abs":
        return np.abs(attr).sum(axis=-1)
    if reduce == "signed":
        return attr.sum(axis=-1)
    raise OptionError(f"reduce must be 'max_abs', 'abs' or 'signed', got {reduce!r}")
