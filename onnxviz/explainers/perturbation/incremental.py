"""Occlusion's ``incremental`` option: when to run :mod:`onnxviz.incremental`, and how its scores
join the occlusion set (sample 0 the original, sample ``i`` the patch ``rects[i - 1]``)."""

from __future__ import annotations

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
                       progress=False) -> None:
    """Feed ``sink`` (a :class:`.common.TargetScores`) the explained scores of the original and of
    every occluded position, in batches of ``batch_size`` positions cut to the memory budget."""
    transform = score_transform(runner.model, score)
    total = len(runner.rects)
    with timer("forward"):
        scores0 = runner.prepare(x0, base)
    sink.add(0, 1, transform(scores0))
    step = runner.fit_batch(batch_size)
    bar, on_batch = _progress(progress, total, "occlusion")
    try:
        for start in range(0, total, step):
            stop = min(total, start + step)
            with timer("forward"):
                scores = runner.scores(start, stop)
            with timer("aggregate"):
                sink.add(start + 1, stop + 1, transform(scores))
            if on_batch is not None:
                on_batch(stop - start)
    finally:
        if bar is not None:
            bar.close()
