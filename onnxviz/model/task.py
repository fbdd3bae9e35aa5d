"""What a model does: classify, detect or segment, read from its metadata or its output's shape.

A classifier gives one row of scores per image (``[N, K]``, or ``[N, K, 1, 1]``). A raw detector
head gives ``[N, 4 + C, A]`` or ``[N, A, 5 + C]`` (:mod:`onnxviz.detection.layouts`), a segmenter
``[N, C, H, W]`` with a map larger than one pixel. A 3-D output is never a classifier's: it was
read as ``4 + C`` times ``A`` classes (a YOLOv8n was "86436 classes"); now it is a detector when
its layout is clear, and refused in one line that names ``task=`` and ``layout=`` when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError

TASKS = ("classify", "detect", "segment")
TASK_KEY = "onnxviz.task"
LAYOUT_KEY = "onnxviz.layout"


@dataclass(frozen=True)
class Task:
    """``name`` (a key of :data:`TASKS`), the detector ``layout`` (None otherwise), the number of
    classes, and ``source``: ``"argument"``, ``"metadata"`` or ``"shape"``."""

    name: str
    layout: str | None
    num_classes: int
    source: str


def resolve(proto, shape: tuple, output: str, task: str | None = None,
            layout: str | None = None) -> Task:
    """The task of a model whose explained output has ``shape`` for one image (batch first).

    Args:
        proto: the model (its ``onnxviz.task`` / ``onnxviz.layout`` metadata are read).
        shape: the output's shape for one image, e.g. ``(1, 84, 8400)``.
        output: the output's name, for messages.
        task: ``classify``, ``detect``, ``segment`` or None (``auto``: metadata, then shape).
        layout: a detector layout, or None (metadata, then guessed from the shape).

    Raises:
        ModelError: an unknown task or layout, a task the output cannot have, or a 3-D output
            whose layout the shape cannot tell.
    """
    from ..detection.layouts import LAYOUTS, check_layout, guess_layout, head_form

    meta = {p.key: p.value for p in proto.metadata_props}
    layout_given = layout is not None
    source = "argument"
    if task in (None, "auto"):
        task, source = meta.get(TASK_KEY), "metadata"
    if layout is None:
        layout = meta.get(LAYOUT_KEY)
    if task is not None and task not in TASKS:
        raise ModelError(f"unknown task {task!r}: use one of {', '.join(TASKS)} (or auto)")
    shape = tuple(int(d) for d in shape)
    hint = (f"pass task= (CLI --task: {', '.join(TASKS)}) and, for a detector, layout= (CLI "
            f"--layout: {', '.join(LAYOUTS)})")
    if task is None:
        source = "shape"
        if len(shape) == 3 and 1 not in shape[1:]:
            layout = layout or guess_layout(shape)
            if layout is None:
                raise ModelError(f"output {output!r} has shape {list(shape)}: a 3-D output is not "
                                 f"a classifier's, and its shape does not tell a detector's "
                                 f"layout; {hint}")
            task = "detect"
        elif len(shape) == 4 and shape[1] > 1 and shape[2] * shape[3] > 1:
            task = "segment"
        else:
            task = "classify"
    if task == "detect":
        layout = layout or guess_layout(shape)
        if layout is None:
            raise ModelError(f"output {output!r} of shape {list(shape)} is not a detector head "
                             f"that onnxviz reads: {hint}")
        check_layout(layout, shape)
        guess = guess_layout(shape)
        if layout != "boxes" and guess not in (None, layout):  # "boxes": a head onnxviz built
            import warnings

            warnings.warn(f"layout {layout!r} reads {LAYOUTS[layout]}, but the output "
                          f"{list(shape)} looks like {guess!r} (anchors outnumber the values per "
                          f"anchor in exported heads); check layout=", stacklevel=4)
        classes = shape[1] - 4 if head_form(layout) == "yolov8" else shape[2] - 5
        return Task("detect", layout, classes, source)
    if layout_given:
        raise ModelError(f"layout={layout!r} is for detectors, but the model's task is {task!r} "
                         f"(output {output!r} of shape {list(shape)})")
    if task == "segment":
        if len(shape) != 4 or shape[2] * shape[3] <= 1:
            raise ModelError(f"task 'segment' needs an output [N, C, H, W], but {output!r} has "
                             f"shape {list(shape)}; {hint}")
        return Task("segment", None, shape[1], source)
    classes = 1
    for d in shape[1:]:
        classes *= d
    return Task("classify", None, classes, source)
