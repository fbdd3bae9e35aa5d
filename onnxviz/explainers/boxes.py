"""Explaining a detector per box: every classifier method, through a classifier view of the head.

A detection is one anchor of the raw head (the tensor before NMS) and one class; the score it is
explained by is that anchor's class score, ``raw[4 + c, a]`` in the ``yolov8`` layout (the element
ODAM differentiates, Zhao & Chan 2023). :class:`BoxView` shows a detector to the methods as a
classifier whose class ``k`` is the k-th target box: its ``forward`` returns those K scores and
its ``gradients`` seed those K elements of the raw head, so occlusion, RISE, LIME, KernelSHAP,
the gradient methods, the rule sets and the CAMs explain a box without knowing boxes exist.

Targets (``target=`` of :func:`onnxviz.explain` on a detector): None explains every detection the
model makes (after NMS); an int is a detection's index; a dict ``{"box": [x0, y0, x1, y1],
"label": name or class}`` (or a ``(box, label)`` pair) is matched to the candidate of that class
whose box overlaps it most (best IoU), as pytorch-grad-cam's ``FasterRCNNBoxScoreTarget`` and
D-RISE match a box; the box is in the photo's pixels.
"""

from __future__ import annotations

import numpy as np

from ..errors import TargetError
from .views import BoxView, LinearView, RegionView

__all__ = ["BoxView", "LinearView", "RegionView", "explain_boxes", "explain_regions",
           "feature_levels", "level_layer", "region_targets", "targets_of"]


def region_targets(model, photo: np.ndarray, target):
    """``(classes, masks at the output's resolution, names, masks at the photo's size)`` of the
    regions to explain in one photo: None explains every class the model predicts somewhere;
    an int or a label, that class's predicted region; ``{"label": name, "mask": (H, W) bool at
    the photo's size}`` a region of the user's."""
    import cv2

    x = model.normalize(_resized(photo, model.input.size))
    logits = model.run(x, [model.score_output])[model.score_output][0]  # (C, h, w)
    h, w = logits.shape[1:]
    predicted = np.argmax(logits, axis=0)
    if isinstance(target, dict):
        if "mask" not in target:
            raise TargetError("a region target is {'label': name, 'mask': (H, W) booleans}")
        cls = _class_of(model, target.get("label", target.get("class")))
        mask = np.asarray(target["mask"])
        if mask.shape != photo.shape[:2]:
            raise TargetError(f"the region mask has shape {mask.shape}; the image is "
                              f"{photo.shape[0]}x{photo.shape[1]} (give a mask of its size)")
        small = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
        rows = [(cls, small)]
    else:
        if target is None:
            classes = [int(c) for c in np.unique(predicted)]
        else:
            classes = [_class_of(model, target)]
        rows = [(c, predicted == c) for c in classes]
    if any(not m.any() for _, m in rows):
        empty = next(model.label_of(c) for c, m in rows if not m.any())
        raise TargetError(f"the region of {empty!r} is empty at the model's output resolution "
                          f"{h}x{w}: nothing to explain")
    names = [f"{model.label_of(c)} region" for c, _ in rows]
    big = [cv2.resize(m.astype(np.uint8), (photo.shape[1], photo.shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool) for _, m in rows]
    return [c for c, _ in rows], np.stack([m for _, m in rows]), names, big


def explain_regions(cls, model, images, target, options: dict) -> list:
    """Explain each image's target regions with method class ``cls``: one Explanation per
    region; its ``region`` says where the region came from and its ``area`` (a fraction of the
    image)."""
    from ..imageio import read_image

    out = []
    for img in images:
        photo = read_image(img, exact=True)
        classes, masks, names, big = region_targets(model, photo, target)
        view = RegionView(model, classes, masks, names)
        found = cls(view, **options).explain([img] * len(classes),
                                             target=list(range(len(classes))))
        for k, e in enumerate(found):
            e.extras = {**e.extras, "region_label": names[k], "region_mask": masks[k]}
            e.region = {"source": "mask" if isinstance(target, dict) else "predicted",
                        "area": round(float(big[k].mean()), 6)}
            e.target, e.label = int(classes[k]), model.label_of(int(classes[k]))
            out.append(e)
    return out


def targets_of(model, photo: np.ndarray, target, nms: dict):
    """``(anchors, classes, boxes in the photo, names, boxes in input pixels, raw head)`` of the
    detections to explain in one photo (see the module doc for ``target``)."""
    from ..detection.boxes import match_box, scale_boxes
    from ..model.dense import detect_input

    size = model.input.size
    h, w = photo.shape[:2]
    found, cands, head = detect_input(model, model.normalize(_resized(photo, size)), (h, w), nms)
    if target is None or isinstance(target, (int, np.integer)):
        if not len(found):
            raise TargetError("the detector finds nothing scoring "
                              f"{nms.get('score_threshold', 0.25):g} or more in this image: no box "
                              "to explain (lower score_threshold, or give a box)")
        picks = range(len(found)) if target is None else [int(target)]
        if target is not None and not 0 <= int(target) < len(found):
            raise TargetError(f"detection {int(target)} does not exist: the detector finds "
                              f"{len(found)} in this image (0..{len(found) - 1})")
        rows = [(int(found.anchor[k]), int(found.class_id[k]), found.xyxy[k]) for k in picks]
    else:
        box, label = _box_and_label(target)
        cls = _class_of(model, label)
        xyxy = np.asarray(box, np.float64)
        if xyxy.shape != (4,) or not np.all(np.isfinite(xyxy)):
            raise TargetError(f"a box is four numbers x0, y0, x1, y1, got {box!r}")
        if xyxy[0] < 0 or xyxy[1] < 0 or xyxy[2] > w or xyxy[3] > h:
            raise TargetError(f"box {xyxy.tolist()} is outside the {w}x{h} image")
        anchor, _ = match_box(cands, scale_boxes(xyxy[None], (h, w), size)[0], cls)
        rows = [(anchor, cls, xyxy.astype(np.float32))]
    names = [f"{model.label_of(c)} [{', '.join(f'{v:.0f}' for v in b)}]" for _, c, b in rows]
    inside = cands.xyxy[[r[0] for r in rows]] if target is None or not isinstance(
        target, (dict, list, tuple)) else scale_boxes(np.stack([r[2] for r in rows]), (h, w), size)
    return ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], names, inside,
            head)


def _resized(photo, size):
    from ..imageio import resize

    return resize(photo, size)[None]


def _box_and_label(target):
    if isinstance(target, dict):
        if "box" not in target:
            raise TargetError("a box target is {'box': [x0, y0, x1, y1], 'label': name}")
        return target["box"], target.get("label", target.get("class"))
    if isinstance(target, (list, tuple)) and len(target) == 2:
        return target[0], target[1]
    raise TargetError(f"a detector's target is None (every detection), a detection index, or "
                      f"{{'box': [x0, y0, x1, y1], 'label': name}}; got {target!r}")


def _class_of(model, label) -> int:
    if label is None:
        raise TargetError("a box target needs its class: {'box': [...], 'label': name}")
    if isinstance(label, (int, np.integer)):
        model.label_of(int(label))
        return int(label)
    names = [model.label_of(k).lower() for k in range(model.num_classes)]
    if str(label).lower() not in names:
        raise TargetError(f"unknown class {label!r}; the detector's classes: "
                          f"{', '.join(model.label_of(k) for k in range(model.num_classes))}")
    return names.index(str(label).lower())


def feature_levels(model) -> list[tuple[int, int, str]]:
    """The head's feature levels: ``(first anchor, end anchor, layer)`` per level, high
    resolution first, as YOLO heads concatenate their levels (80x80 + 40x40 + 20x20 = 8400
    anchors at 640 px). A level's layer is the last 4-D tensor of its grid that a Conv reads:
    the head's own feature at that level, where a CAM of the box is drawn (ODAM, Zhao & Chan
    2023). Empty when the 4-D layers' grids do not add up to the anchors."""
    from itertools import combinations

    from ..detection.layouts import head_form
    from ..model.layouts import layer_layout

    cache = model.__dict__.setdefault("_onnxviz_levels", {})
    if "levels" in cache:
        return cache["levels"]
    shape = model.shape_of(model.score_output)
    anchors = shape[2] if head_form(model.layout) == "yolov8" else shape[1]
    conv_inputs = {n.input[0] for n in model.proto.graph.node if n.op_type == "Conv" and n.input}
    last: dict[tuple[int, int], str] = {}
    for layer in model.layers():
        s = layer.shape
        if len(s) != 4 or not all(isinstance(d, int) for d in s[1:]):
            continue
        lay = layer_layout(model, layer)  # tf2onnx moves an NHWC input to NCHW for its Convs
        grid = (s[lay.index("H")], s[lay.index("W")])
        if layer.tensor in conv_inputs:
            last[grid] = layer.name
    grids = sorted(last, key=lambda g: -g[0] * g[1])
    levels: list = []
    for k in range(1, min(4, len(grids)) + 1):
        for combo in combinations(grids, k):
            if sum(g[0] * g[1] for g in combo) == anchors:
                start = 0
                for g in combo:
                    levels.append((start, start + g[0] * g[1], last[g]))
                    start += g[0] * g[1]
                break
        if levels:
            break
    cache["levels"] = levels
    return levels


def level_layer(model, anchor: int) -> str | None:
    """The feature-level layer of ``anchor`` (:func:`feature_levels`), or None."""
    for start, end, layer in feature_levels(model):
        if start <= anchor < end:
            return layer
    return None


def explain_boxes(cls, model, images, target, options: dict, nms: dict) -> list:
    """Explain each image's target boxes with method class ``cls``: one Explanation per box,
    in image order; each has its ``box`` (photo pixels), its ``score`` (the box's confidence,
    or with ODAM's ``box_output`` that coordinate), and in ``extras`` its ``anchor``, name and
    ``explained_tensor`` (the raw head, or for the ``boxes`` layout the scores NonMaxSuppression
    reads, with ``nms_node``).

    Every method but D-RISE explains the box's class logit where the head ends in a Sigmoid
    (:func:`onnxviz.model.logit_twin`): a confident box's score is a Sigmoid at 1, flat to
    every perturbation and every gradient, as a classifier's softmax is, which onnxviz
    explains before too. D-RISE weighs masks by the confidences, as its paper does."""
    from ..imageio import read_image
    from ..model import logit_twin

    # the tensor whose element is explained: the raw head, or the scores NMS reads
    tensor = {"explained_tensor": model.score_output} if model.nms is None else {
        "explained_tensor": model.nms.scores, "nms_node": model.nms.node}
    output = options.get("box_output", "score")  # ODAM's: a box's score or a coordinate
    if "box_output" in options:  # checked before the views are built on it
        cls.option_specs()["box_output"].check("box_output", output)
    # the class logits: a confidence of 1 has no gradient left (an NMS graph keeps its own)
    seen = logit_twin(model) if model.nms is None else model
    out = []
    for img in images:
        photo = read_image(img, exact=True)
        anchors, classes, boxes, names, inside, head = targets_of(model, photo, target, nms)
        view = BoxView(seen, anchors, classes, names, output)
        # what predict says of each box, read from the head that picked the boxes
        score = BoxView(model, anchors, classes, names, output).from_raw(head[None])[0]
        if "detect" in cls.tasks:  # D-RISE: every box from one pass over the raw head
            px = model.to_pixels([img])[0]
            found = cls(model, **options).explain_boxes(px, inside, np.asarray(classes), names)
            for e in found:
                e.extras["drise_weight"] = e.score
        elif cls.family == "cam" and options.get("layer") is None and "layer" in cls.options():
            found = [None] * len(anchors)  # each box at its own feature level, by default
            groups: dict = {}
            for k, a in enumerate(anchors):
                groups.setdefault(level_layer(model, int(a)), []).append(k)
            for layer, ks in groups.items():
                sub = BoxView(seen, [anchors[k] for k in ks], [classes[k] for k in ks],
                              [names[k] for k in ks], output)
                done = cls(sub, **{**options, "layer": layer}).explain(
                    [img] * len(ks), target=list(range(len(ks))))
                for k, e in zip(ks, done):
                    found[k] = e
        else:
            found = cls(view, **options).explain([img] * len(anchors),
                                                 target=list(range(len(anchors))))
        for k, e in enumerate(found):
            e.score = float(score[k])  # what predict says of the box, whatever was explained
            e.extras = {**e.extras, "anchor": int(anchors[k]), "box_label": names[k],
                        "input_box": [round(float(v), 2) for v in inside[k]], **tensor}
            e.box = [round(float(v), 2) for v in boxes[k]]
            if output != "score":
                e.extras["box_output"] = output  # e.score is that coordinate, in input pixels
            e.target, e.label = int(classes[k]), model.label_of(int(classes[k]))
            out.append(e)
    return out
