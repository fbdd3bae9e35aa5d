"""RISE: saliency as the score-weighted mean of random smooth masks.

Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018 (https://arxiv.org/abs/1806.07421), eq. 6:
``S(x) = 1 / (E[M] N) * sum_i f(I . M_i) M_i(x)`` with ``E[M] = p``.
"""

from __future__ import annotations

import numpy as np

from ...errors import OptionError
from ...perturb import blend_batch, mask_params, rise_masks, weighted_mask_sum
from ..base import Explainer, Explanation, Timer
from ..registry import register
from .._checks import check_positive_ints
from .common import Fill, TargetScores, check_score, explain_each, geometry, run_set, to_input


@register
class Rise(Explainer):
    """Average random masks weighted by the score of the image seen through them.

    Args:
        model: an :class:`onnxviz.Model`.
        num_masks: number of random masks N.
        cells: side of the coarse random grid (s in the paper).
        p: probability that a grid cell is kept.
        fill: what masked-out pixels blend towards: ``"black"`` (the paper's ``I . M``),
            ``"gray"``, ``"mean"``, ``"blur"``, a number, or one number per channel, or any
            occlusion fill: ``"zero"``, a model-space tensor or an image (see
            :class:`.common.Fill`).
        score: ``"probability"`` (softmax, as the paper) or ``"logit"``.
        seed: seed of the masks; the same seed gives the same saliency.
        batch_size: images per ONNX Runtime call.
        progress: show a progress bar (or a callable ``f(done, total)``).
    """

    name = "rise"
    family = "perturbation"
    summary = "score-weighted average of random upsampled masks (Petsiuk et al. 2018)"

    def __init__(self, model, *, num_masks=4000, cells=7, p=0.5, fill="black",
                 score="probability", seed=0, batch_size=32, progress=False):
        super().__init__(model, num_masks=num_masks, cells=cells, p=p, fill=fill, score=score,
                         seed=seed, batch_size=batch_size)
        check_positive_ints(num_masks=num_masks, cells=cells, batch_size=batch_size)
        if not 0.0 < float(p) <= 1.0:
            raise OptionError(f"p (the keep probability) must be in (0, 1], got {p!r}")
        self.score = check_score(score)
        self.geo = geometry(model)
        self.fill = Fill(model, fill, self.geo)
        if cells > min(self.geo.size):
            raise OptionError(f"cells={cells} is more than the image side {min(self.geo.size)}")
        self.num_masks, self.cells, self.p = int(num_masks), int(cells), float(p)
        self.seed, self.batch_size, self.progress = int(seed), int(batch_size), progress

    def explain(self, images, target=None) -> list[Explanation]:
        """One :class:`Explanation` per image; every image sees the same masks (from ``seed``).

        ``raw`` holds the N explained scores of the masked images.
        """
        def masks():
            return mask_params(self.num_masks, self.cells, self.p, self.geo.size, self.seed)

        return explain_each(self.model, images, target, self.geo, self._one, prepare=masks)

    def _one(self, px, target, grids, shifts, cell) -> Explanation:
        timer = Timer()
        geo = self.geo
        with timer("prepare"):
            x0 = to_input(self.model, px, geo)
            base = self.fill.sample(px)
        total = self.num_masks + 1  # sample 0: the unperturbed image, not part of the average
        sink = TargetScores(self.model, target, total)
        acc = np.zeros(geo.size, np.float64)

        def fill(start, stop, slot):
            m = slot.masks[: stop - start]
            rise_masks(grids, shifts, cell, start, m)
            blend_batch(x0, base, m, slot.x[: stop - start], geo.channels_last)

        def consume(start, stop, slot, scores):
            sink.add(start, stop, scores)
            w = sink.values[start:stop].copy()
            if start == 0:
                w[0] = 0.0
            weighted_mask_sum(acc, slot.masks[: stop - start], w)

        run_set(self.model, total, self.batch_size, geo, fill, consume, score=self.score,
                timer=timer, progress=self.progress, desc="rise", masks=True)
        heatmap = (acc / (self.num_masks * self.p)).astype(np.float32)
        t = sink.index
        return Explanation(
            heatmap=heatmap, raw=sink.values[1:].astype(np.float32), target=t,
            label=self.model.label_of(t), score=float(sink.values[0]), method=self.name,
            params=dict(self.params), timings=timer.result(), image=px,
            extras={"forwards": total},
        )
