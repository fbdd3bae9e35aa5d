"""Occlusion's ``incremental`` option: when to run :mod:`onnxviz.incremental`, and how its scores
join the occlusion set (sample 0 the original, sample ``i`` the patch ``rects[i - 1]``)."""

from __future__ import annotations

import numpy as np

from ...errors import OptionError
from ..base import Timer
from .common import _progress, score_transform

#: What ``incremental`` accepts (text from the CLI and the server, or a bool).
WORDS = {"auto": "auto", "true": True, "on": True, "yes": True, "1": True,
         "false": False, "off": False, "no": False, "0": False}


def check_incremental(value, approximate: bool = False):
    """``"auto"``, True or False from a bool or a word; an ``approximate`` run (a projective-field
    threshold below 1) needs the incremental run."""
    word = value if isinstance(value, bool) else (
        WORDS.get(value.strip().lower()) if isinstance(value, str) else None)
    if word is None:
        raise OptionError(f"incremental must be auto, true or false, got {value!r}")
    if word is False and approximate:
        raise OptionError("projective_threshold below 1 is a mode of the incremental run; it "
                          "cannot be given with incremental=False")
    return word


def runner_for(model, rects, incremental, threshold=None) -> tuple:
    """``(runner or None, info)``: the :class:`onnxviz.incremental.Runner` to use (None: full
    inference) and what ``extras["incremental"]`` reports. With a projective-field
    ``threshold`` (approximate), the plan is used whenever the graph allows."""
    if incremental is False:
        return None, {"used": False, "reason": "incremental=False"}
    from ...incremental import AUTO_SPEEDUP, Runner, plan_for

    plan = plan_for(model, rects, cap=threshold)
    info = {"used": False, "reason": plan.reason, "exact": threshold is None}
    if plan.reason is not None:
        return None, info
    info.update(cut=plan.cut, frontier=list(plan.frontier), prefix_ops=len(plan.steps),
                crop_graphs=len(plan.segments), max_share=plan.max_share,
                flops_skipped=round(plan.skipped, 4),
                predicted_speedup=round(plan.speedup, 3))
    if incremental == "auto" and threshold is None and plan.speedup < AUTO_SPEEDUP:
        info["reason"] = (f"the cost model predicts {plan.speedup:.2f}x, under the "
                          f"{AUTO_SPEEDUP}x that incremental='auto' asks")
        return None, info
    info.update(used=True, reason=None)
    return Runner(model, plan, rects), info


def incremental_scores(runner, x0, base, sink, batch_size: int, *, score: str, timer: Timer,
                       progress=False, index=None) -> None:
    """Feed ``sink`` (a :class:`.common.TargetScores`) the explained scores of the original and of
    the occluded positions ``index`` (default all), in batches of ``batch_size`` positions cut to
    the memory budget."""
    explained = score_transform(runner.model, score)
    # a box or region view (explainers/boxes.py): the runner gives the raw head, the view picks
    pick = getattr(runner.model, "from_raw", None)

    def transform(raw):
        return explained(raw if pick is None else pick(raw))
    index = np.arange(len(runner.rects)) if index is None else np.asarray(index)
    total = len(index)
    with timer("forward"):
        scores0 = runner.prepare(x0, base)
    sink.add(0, 1, transform(scores0))
    step = runner.fit_batch(batch_size)
    bar, on_batch = _progress(progress, total, "occlusion")
    try:
        for start in range(0, total, step):
            stop = min(total, start + step)
            with timer("forward"):
                scores = runner.scores(index[start:stop])
            with timer("aggregate"):
                sink.add(start + 1, stop + 1, transform(scores))
            if on_batch is not None:
                on_batch(stop - start)
    finally:
        if bar is not None:
            bar.close()


#: Adaptive drill-down's coarse pass: every DRILL_STEP-th position of each grid axis.
DRILL_STEP = 4


def coarse_positions(grid, step: int = DRILL_STEP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows and columns of the coarse pass (every ``step``-th, the last one included) and their
    flat indices in the (rows, cols) ``grid``."""
    rows, cols = (np.unique(np.r_[np.arange(0, n, step), n - 1]) for n in grid)
    return rows, cols, (rows[:, None] * grid[1] + cols[None, :]).ravel()


def interpolate(grid, rows, cols, values) -> np.ndarray:
    """Bilinear interpolation over the grid of the coarse ``values`` (len(rows), len(cols))."""
    values = np.asarray(values, np.float64).reshape(len(rows), len(cols))
    along = np.stack([np.interp(np.arange(grid[0]), rows, values[:, j])
                      for j in range(len(cols))], 1)
    return np.stack([np.interp(np.arange(grid[1]), cols, along[i]) for i in range(grid[0])])


def drill_down(run, grid, share: float, target):
    """Krypton's adaptive drill-down (Nakandala et al., SIGMOD 2019, sec. 4.2).

    Args:
        run: ``run(index, target) -> TargetScores`` of the image and the positions ``index``.
        grid: (rows, cols) of the positions.
        share: the share of all positions run at the fine stride, the hottest first.
        target: the target (None: resolved by the first pass).

    Returns:
        ``(sink of the first pass, drops (P,), {"coarse": n, "fine": n})``: exact drops where a
        pass ran, the coarse pass's interpolation elsewhere.
    """
    rows, cols, coarse = coarse_positions(grid)
    sink = run(coarse, target)
    exact = sink.values[0] - sink.values[1:]
    drops = interpolate(grid, rows, cols, exact).ravel()
    drops[coarse] = exact
    left = np.setdiff1d(np.arange(drops.size), coarse)
    hot = left[np.argsort(-drops[left], kind="stable")][: int(np.ceil(share * drops.size))]
    hot = np.sort(hot)
    if len(hot):
        fine = run(hot, sink.index)
        drops[hot] = fine.values[0] - fine.values[1:]
    return sink, drops, {"coarse": len(coarse), "fine": len(hot)}
