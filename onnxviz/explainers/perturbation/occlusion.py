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
from .incremental import check_incremental, drill_down, incremental_scores, runner_for


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
        batch_size: images per ONNX Runtime call (positions per batch when incremental).
        incremental: ``"auto"`` (the default), ``True`` or ``False``: re-run only the region each
            layer's output can change, from the original image's cached activations (exact; see
            :mod:`onnxviz.explainers.perturbation.incremental`). ``"auto"`` uses it when the cost
            model predicts it is faster; ``True`` whenever the graph allows; a graph the
            propagation does not understand runs in full either way, with the reason in
            ``extras["incremental"]``.
        projective_threshold: 1.0 (exact, the default), or Krypton's approximate mode: a
            fraction tau in (0, 1); each conv or pooling output's changed region is cut to tau of
            its side (Nakandala et al., SIGMOD 2019, sec. 4.1), so later layers recompute less
            and the map is approximate. Below 1 it uses the incremental run whenever the graph
            allows.
        drilldown: 1.0 (every position, the default), or Krypton's adaptive drill-down
            (approximate): a first pass at every 4th position of each axis, then only this share
            of the positions, those with the largest interpolated drops, at ``stride``; the
            others keep the coarse pass's bilinear interpolation (Nakandala et al., SIGMOD 2019,
            sec. 4.2).
        progress: show a progress bar (or a callable ``f(done, total)``).
    """

    name = "occlusion"
    family = "perturbation"
    summary = "score drop when a sliding patch hides part of the image (Zeiler & Fergus 2014)"
    def __init__(self, model, *, patch=32, stride=8, fill="gray", edges="truncate",
                 score="probability", batch_size=32, incremental="auto",
                 projective_threshold: float = 1.0, drilldown: float = 1.0, progress=False):
        super().__init__(model, patch=patch, stride=stride, fill=fill, edges=edges, score=score,
                         batch_size=batch_size, incremental=incremental,
                         projective_threshold=projective_threshold, drilldown=drilldown)
        self.incremental = check_incremental(incremental, projective_threshold < 1)
        self.drilldown = float(drilldown)
        self.threshold = None if projective_threshold >= 1 else float(projective_threshold)
        self._runner = None
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
        if self._runner is None:
            with timer("plan"):
                self._runner = runner_for(self.model, rects, self.incremental, self.threshold)
        info = self._runner[1]

        def run(index, target):
            return self._scores(x0, base, target, index, timer)

        if self.drilldown < 1:
            sink, drops, passes = drill_down(run, self.grid, self.drilldown, target)
            info = {**info, "drilldown": passes}
            total = passes["coarse"] + passes["fine"] + 2  # each pass runs the image too
        else:
            sink = run(np.arange(len(rects)), target)
            drops = sink.values[0] - sink.values[1:]
            total = len(rects) + 1
        with timer("aggregate"):
            heatmap = occlusion_heatmap(drops, rects, *geo.size)
        worst = int(np.argmax(drops))
        t = sink.index
        return Explanation(
            heatmap=heatmap, raw=drops.reshape(self.grid).astype(np.float32), target=t,
            label=self.model.label_of(t), score=float(sink.values[0]), method=self.name,
            params=dict(self.params), timings=timer.result(), image=px,
            extras={"worst_patch": tuple(int(v) for v in rects[worst]),
                    "worst_drop": float(drops[worst]), "grid": self.grid,
                    "forwards": total, "incremental": dict(info)},
        )

    def _scores(self, x0, base, target, index, timer):
        """A :class:`TargetScores` of the image (sample 0) and of the positions ``index``."""
        rects = np.ascontiguousarray(self.rects[index])
        sink = TargetScores(self.model, target, len(index) + 1)
        runner = self._runner[0]
        if runner is not None:
            incremental_scores(runner, x0, base, sink, self.batch_size, score=self.score,
                               timer=timer, progress=self.progress, index=index)
            return sink

        def fill(start, stop, slot):
            occlusion_batch(x0, base, rects, start, slot.x[: stop - start],
                            self.geo.channels_last)

        run_set(self.model, len(index) + 1, self.batch_size, self.geo, fill,
                lambda s, e, slot, sc: sink.add(s, e, sc), score=self.score, timer=timer,
                progress=self.progress, desc="occlusion")
        return sink
