"""Occlusion sensitivity: how much the score drops when a patch of the image is hidden.

Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, sec. 4.2
(https://arxiv.org/abs/1311.2901); MATLAB's ``occlusionSensitivity`` and Captum's ``Occlusion``.
"""

from __future__ import annotations

import numpy as np

from ...perturb import occlusion_batch, occlusion_heatmap, patch_grid
from .._checks import check_positive_ints
from ..base import Explainer, Explanation, Timer
from ..registry import register
from .common import Fill, TargetScores, check_score, explain_each, geometry, run_set, to_input


@register
class Occlusion(Explainer):
    """Slide a patch of ``fill`` over the image; the heatmap is the score drop it causes.

    Args:
        model: an :class:`onnxviz.Model`.
        patch: patch side in pixels, or (h, w).
        stride: step between patch positions, or (h, w).
        fill: what the patch shows: ``"gray"`` (128, as MATLAB), ``"black"``, ``"mean"`` (the
            image's mean colour), ``"blur"``, a number, or one number per channel (pixel values);
            or ``"zero"`` (the zero input tensor, Captum's default baseline), an array (a
            model-space tensor as Captum's ``baselines``, or a pixel image) or an image file
            (see :mod:`onnxviz.explainers.baselines`).
        edges: ``"truncate"`` (patches from the top-left corner, the last one cut at the border,
            as Captum) or ``"center"`` (a patch centred on every stride point, clipped at the
            border, as MATLAB).
        score: ``"probability"`` (softmax) or ``"logit"``.
        batch_size: images per ONNX Runtime call.
        progress: show a progress bar (or a callable ``f(done, total)``).
    """

    name = "occlusion"
    family = "perturbation"
    summary = "score drop when a sliding patch hides part of the image (Zeiler & Fergus 2014)"
    def __init__(self, model, *, patch=32, stride=8, fill="gray", edges="truncate",
                 score="probability", batch_size=32, progress=False):
        super().__init__(model, patch=patch, stride=stride, fill=fill, edges=edges, score=score,
                         batch_size=batch_size)
        check_positive_ints(batch_size=batch_size)
        self.score = check_score(score)
        self.geo = geometry(model)
        self.fill = Fill(model, fill, self.geo)
        self.rects, self.grid = patch_grid(self.geo.size, patch, stride, edges)
        if len(self.rects) == 1:
            import warnings

            warnings.warn(f"occlusion: the patch ({patch}) covers the whole {self.geo.size[0]}x"
                          f"{self.geo.size[1]} input, so the map is one constant value; pass a "
                          f"smaller patch (e.g. patch={max(1, min(self.geo.size) // 7)}, "
                          f"stride={max(1, min(self.geo.size) // 28)})", stacklevel=2)
        self.batch_size, self.progress = int(batch_size), progress

    def explain(self, images, target=None) -> list[Explanation]:
        """One :class:`Explanation` per image; ``heatmap`` = mean drop of the patches covering a pixel.

        ``raw`` is the (rows, cols) grid of drops (unperturbed score minus occluded score);
        ``extras["worst_patch"]`` is the ``(y0, x0, y1, x1)`` of the patch with the largest drop.
        """
        return explain_each(self.model, images, target, self.geo, self._one)

    def _one(self, px, target) -> Explanation:
        timer = Timer()
        geo, rects = self.geo, self.rects
        with timer("prepare"):
            x0 = to_input(self.model, px, geo)
            base = self.fill.sample(px)
        total = len(rects) + 1
        sink = TargetScores(self.model, target, total)

        def fill(start, stop, slot):
            occlusion_batch(x0, base, rects, start, slot.x[: stop - start], geo.channels_last)

        run_set(self.model, total, self.batch_size, geo, fill,
                lambda s, e, slot, sc: sink.add(s, e, sc), score=self.score, timer=timer,
                progress=self.progress, desc="occlusion")
        with timer("aggregate"):
            drops = sink.values[0] - sink.values[1:]
            heatmap = occlusion_heatmap(drops, rects, *geo.size)
        worst = int(np.argmax(drops))
        t = sink.index
        return Explanation(
            heatmap=heatmap, raw=drops.reshape(self.grid).astype(np.float32), target=t,
            label=self.model.label_of(t), score=float(sink.values[0]), method=self.name,
            params=dict(self.params), timings=timer.result(), image=px,
            extras={"worst_patch": tuple(int(v) for v in rects[worst]),
                    "worst_drop": float(drops[worst]), "grid": self.grid,
                    "forwards": total},
        )
