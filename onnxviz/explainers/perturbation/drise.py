"""D-RISE: RISE for detectors, every box of an image from one pass of masks.

Petsiuk et al., "Black-box Explanation of Object Detectors via Saliency Maps", CVPR 2021
(https://arxiv.org/abs/2006.03204), eq. 2-4: each masked image's proposals ``d_j`` (box ``L_j``,
objectness ``O_j``, class probabilities ``P_j``) are compared with the target detection
``d_t`` (``L_t``, one-hot ``P_t``) by ``s(d_t, d_j) = IoU(L_t, L_j) O_j cos(P_t, P_j)``; the
mask's weight is ``w = max_j s(d_t, d_j)`` and the saliency ``sum_i w_i M_i``, divided here by
``N p`` as RISE does (eq. 6 of the RISE paper), so that maps of different N compare. The
proposals are every anchor of the raw head (the tensor before NMS).
"""

from __future__ import annotations

import numpy as np

from ...detection.layouts import drise_weights_batch
from ...perturb import bin_grids, mask_params, rise_blend, upsample_bins
from .._checks import check_positive_ints
from ..base import Explainer, Explanation, Timer
from ..registry import register
from .common import Fill, geometry, run_set, to_input


@register
class DRise(Explainer):
    """Explain a detector's boxes by random masks weighted by how well each masked image still
    finds each box.

    Args:
        model: a detector (``model.task == "detect"``).
        num_masks: number of random masks N (the paper: thousands).
        cells: side of the coarse random grid.
        p: probability that a grid cell is kept.
        fill: what masked-out pixels blend towards (any occlusion fill; ``"black"`` as the
            paper's ``I . M``).
        seed: seed of the masks; the same seed gives the same maps.
        batch_size: images per ONNX Runtime call.
        progress: show a progress bar (or a callable ``f(done, total)``).
    """

    name = "drise"
    family = "perturbation"
    summary = "D-RISE: random masks weighted by how well the masked image still finds the box " \
              "(Petsiuk et al. 2021; detectors)"
    tasks = ("detect",)

    def __init__(self, model, *, num_masks=2000, cells=16, p=0.5, fill="black", seed=0,
                 batch_size=32, progress=False):
        super().__init__(model, num_masks=num_masks, cells=cells, p=p, fill=fill, seed=seed,
                         batch_size=batch_size)
        check_positive_ints(num_masks=num_masks, cells=cells, batch_size=batch_size)
        self.geo = geometry(model)
        self.fill = Fill(model, fill, self.geo)
        self.num_masks, self.cells, self.p = int(num_masks), int(cells), float(p)
        self.seed, self.batch_size, self.progress = int(seed), int(batch_size), progress

    @classmethod
    def applies_to(cls, model) -> str | None:
        if getattr(model, "task", "classify") != "detect":
            return "drise explains the boxes of object detectors; this model is not one"
        return None

    def explain(self, images, target=None) -> list[Explanation]:
        """Through :func:`onnxviz.explain`, which finds the boxes: see :meth:`explain_boxes`."""
        from .. import explain

        return explain(self.model, images, self.name, target=target, **self.params)

    def explain_boxes(self, pixels: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                      names: list[str]) -> list[Explanation]:
        """One map per target box of one image, from one pass of ``num_masks`` masks.

        Args:
            pixels: (H, W, 3) the image at the model's input size.
            boxes: (K, 4) target boxes, xyxy in input pixels.
            classes: (K,) their classes.
            names: the K names, for the results' labels.
        """
        timer = Timer()
        geo, m = self.geo, self.model
        with timer("prepare"):
            grids, shifts, cell = mask_params(self.num_masks, self.cells, self.p, geo.size,
                                              self.seed)
            x0 = to_input(m, pixels, geo)
            base = self.fill.sample(pixels)
        k = len(classes)
        total = self.num_masks + 1  # mask 0 is the image itself: its weights are the scores
        # each box's weighted sum of masks, kept per mask shift on the coarse grid (bin_grids)
        acc = np.zeros((k, int(cell[0] * cell[1]), *grids.shape[1:]), np.float64)
        first = np.zeros(k)
        shape = tuple(m.shape_of(m.score_output)[1:])

        def fill(start, stop, slot):  # the masked images; the masks are summed on the grid
            rise_blend(grids, shifts, cell, start, x0, base, slot.x[:stop - start],
                       geo.channels_last)

        def consume(start, stop, slot, scores):
            w = drise_weights_batch(scores.reshape(len(scores), *shape), m.layout, boxes,
                                    classes)
            if start == 0:
                first[:] = w[0]
                w[0] = 0.0
            bin_grids(acc, grids, shifts, cell, start, np.ascontiguousarray(w))

        run_set(m, total, self.batch_size, geo, fill, consume, score="logit", timer=timer,
                progress=self.progress, desc="drise")
        with timer("aggregate"):
            total_sum = np.zeros((k, *geo.size), np.float64)
            upsample_bins(acc, cell, total_sum)
        times = timer.result(share=k)
        heat = (total_sum / (self.num_masks * self.p)).astype(np.float32)
        return [Explanation(heatmap=heat[t], raw=None, target=int(classes[t]),
                            label=m.label_of(int(classes[t])), score=float(first[t]),
                            method=self.name, params=dict(self.params), timings=times,
                            image=pixels, extras={"forwards": total, "box_label": names[t]})
                for t in range(k)]
