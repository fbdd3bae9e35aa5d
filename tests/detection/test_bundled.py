"""The bundled detector and segmenter on held-out scenes (issue 22's proof): they find the
shapes, and each box's or region's map points at its own object.

The scenes come from ``models/scenes.py`` with a seed the training never saw (12; training used
11). A box's map "points at its object" when its maximum lies in the object's true box, within
the pointing game's tolerance (Zhang et al. 2016: 15 px on ~224 px images, so 6 px on these
96 px scenes); only true detections count (IoU >= 0.5 with a true box of the same class).
"Leak" is the share of a map's positive mass inside another object's true box, for each pair
of objects whose boxes do not overlap. The segmenter's regions: below.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.detection.boxes import box_iou

TOLERANCE = 6
METHODS = {
    "drise": {"num_masks": 500, "seed": 0},
    "odam": {},
    "gradcam": {},
    "saliency": {},
    "occlusion": {"patch": 8, "stride": 4},
}


@pytest.fixture(scope="module")
def det():
    return ov.load(ov.bundled_model("shapes_detector"))


@pytest.fixture(scope="module")
def scenes():
    from models.scenes import make_scenes

    return make_scenes(40, seed=12)


def _true_positives(det, img, boxes, classes, found):
    """``[(explanation, index of its true box)]`` for the true detections among ``found``."""
    out = []
    for e in found:
        ious = box_iou(np.asarray([e.box], np.float64), boxes)[0]
        j = int(np.argmax(ious))
        if ious[j] >= 0.5 and classes[j] == e.target:
            out.append((e, j))
    return out


def test_the_detector_finds_the_shapes(det, scenes):
    hits = misses = false = 0
    for img, boxes, classes in zip(scenes.images, scenes.boxes, scenes.classes):
        d = det.predict(img, score_threshold=0.5)
        matched: set = set()
        for k in range(len(d)):
            ious = box_iou(d.xyxy[k:k + 1].astype(np.float64), boxes)[0]
            j = int(np.argmax(ious))
            if ious[j] >= 0.5 and classes[j] == d.class_id[k] and j not in matched:
                matched.add(j)
            else:
                false += 1
        hits += len(matched)
        misses += len(boxes) - len(matched)
    assert hits / (hits + misses) >= 0.95  # recall at IoU 0.5
    assert hits / (hits + false) >= 0.75  # precision at IoU 0.5


@pytest.fixture(scope="module")
def maps(det, scenes):
    """Per method: ``(heatmap, true box, other true boxes, whether each is of the box's class,
    whether the box's class is alone in the scene)`` of every true detection in the first eight
    scenes."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a blank map is counted as a miss below
        for method, opts in METHODS.items():
            rows = []
            for img, boxes, classes in zip(scenes.images[:8], scenes.boxes[:8],
                                           scenes.classes[:8]):
                found = ov.explain(det, img, method, score_threshold=0.5, **opts)
                for e, j in _true_positives(det, img, boxes, classes, found):
                    apart = [k for k in range(len(boxes)) if k != j and box_iou(
                        boxes[j:j + 1], boxes[k:k + 1])[0, 0] == 0]
                    alone = sum(c == classes[j] for c in classes) == 1
                    rows.append((e.heatmap, boxes[j], [boxes[k] for k in apart],
                                 [classes[k] == classes[j] for k in apart], alone))
            out[method] = rows
    return out


def _points(heat, box) -> bool:
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    x0, y0, x1, y1 = box
    return (heat.max() > heat.min() and x0 - TOLERANCE <= x + 0.5 <= x1 + TOLERANCE
            and y0 - TOLERANCE <= y + 0.5 <= y1 + TOLERANCE)


def _leaks(heat, others) -> list[float]:
    pos = np.clip(heat, 0, None)
    total = max(float(pos.sum()), 1e-12)
    return [float(pos[int(b[1]):int(np.ceil(b[3])), int(b[0]):int(np.ceil(b[2]))].sum()) / total
            for b in others]


@pytest.mark.parametrize("method", ["drise", "odam", "saliency", "occlusion"])
def test_each_box_map_points_at_its_own_object(maps, method):
    rows = maps[method]
    assert len(rows) >= 12
    hits = [_points(h, b) for h, b, *_ in rows]
    assert np.mean(hits) >= 0.9, f"{method}: {sum(hits)} of {len(hits)}"


@pytest.mark.parametrize("method", ["drise", "odam", "saliency", "occlusion"])
def test_a_box_map_stays_off_the_other_objects(maps, method):
    leaks = [v for h, _, others, *_ in maps[method] for v in _leaks(h, others)]
    assert len(leaks) >= 10 and max(leaks) < 0.2, f"{method}: worst {max(leaks):.3f}"


def test_gradcam_points_at_its_box_among_other_classes(maps):
    """Grad-CAM is class-discriminative: where no other object of the box's class is in the
    scene, its map meets the issue's two criteria (maximum on the box for >= 90 % of boxes; less
    than 20 % of the positive mass on any other object)."""
    rows = maps["gradcam"]
    alone = [_points(h, b) for h, b, _, _, single in rows if single]
    other_class = [v for h, _, others, same, _ in rows
                   for v, s in zip(_leaks(h, others), same) if not s]
    assert len(alone) >= 8 and np.mean(alone) >= 0.9, f"{sum(alone)} of {len(alone)}"
    assert len(other_class) >= 10 and max(other_class) < 0.2, f"worst {max(other_class):.3f}"


def test_gradcam_spreads_to_other_objects_of_its_class_where_odam_does_not(maps):
    """Grad-CAM weighs a feature map's channels by their mean gradient, so a box's map lights up
    every object those channels see: the other shapes of its class. Two boxes of one class share
    the activations and differ only in those weights, so no map of this formula (the one
    pytorch-grad-cam computes, tests/detection/test_peers.py) can keep to its own instance; ODAM
    weighs each position by its own gradient and does (Zhao & Chan 2023, the reason ODAM
    exists)."""
    def same_class_leaks(method):
        return [v for h, _, others, same, _ in maps[method]
                for v, s in zip(_leaks(h, others), same) if s]

    grad, odam = same_class_leaks("gradcam"), same_class_leaks("odam")
    assert len(grad) >= 3 and max(grad) > 0.2 > max(odam)
    assert np.mean(odam) < np.mean(grad)
    # and so, next to another object of its class, its maximum often lands on that one
    crowded = [(h, b) for h, b, _, _, single in maps["gradcam"] if not single]
    assert np.mean([_points(h, b) for h, b in crowded]) < 0.9
    assert all(_points(h, b) for h, b, _, _, single in maps["odam"] if not single)


# The bundled segmenter: the same criteria per region. A region is a shape class's predicted
# mask (the default target); its map "points at its region" when its maximum lies on one of the
# region's pixels (no tolerance), and "leak" is its share of positive mass on another shape
# class's region in the same image. Where the maximum is a plateau (occlusion's map is constant
# over each patch when stride = patch), its centre is the maximum's place, not its top-left pixel.
REGION_METHODS = {"saliency": {}, "gradcam": {}, "occlusion": {"patch": 8, "stride": 8}}


@pytest.fixture(scope="module")
def seg():
    return ov.load(ov.bundled_model("shapes_segmenter"))


def test_the_segmenter_segments_the_shapes(seg, scenes):
    found = np.stack([seg.predict(img).class_map for img in scenes.images])
    for c in range(len(seg.labels)):
        ours, truth = found == c, scenes.masks == c
        iou = (ours & truth).sum() / (ours | truth).sum()
        assert iou >= 0.9, f"{seg.labels[c]}: IoU {iou:.3f}"


@pytest.fixture(scope="module")
def region_maps(seg, scenes):
    """Per method: ``(heatmap, region mask, other shape regions' masks)`` of every shape region
    in the first eight scenes (the background is a region too, but not an object)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a blank map is counted as a miss below
        for method, opts in REGION_METHODS.items():
            rows = []
            for img in scenes.images[:8]:
                found = ov.explain(seg, img, method, **opts)
                masks = {e.target: e.extras["region_mask"] for e in found if e.target != 0}
                for e in found:
                    if e.target != 0:
                        rows.append((e.heatmap, masks[e.target],
                                     [m for c, m in masks.items() if c != e.target]))
            out[method] = rows
    return out


def _peak(heat) -> tuple[int, int]:
    ys, xs = np.nonzero(heat == heat.max())
    return int(round(ys.mean())), int(round(xs.mean()))


@pytest.mark.parametrize("method", list(REGION_METHODS))
def test_each_region_map_points_at_its_own_region(region_maps, method):
    rows = region_maps[method]
    assert len(rows) >= 12 and rows[0][1].shape == rows[0][0].shape
    hits = [h.max() > h.min() and bool(m[_peak(h)]) for h, m, _ in rows]
    assert np.mean(hits) >= 0.9, f"{method}: {sum(hits)} of {len(hits)}"


@pytest.mark.parametrize("method", list(REGION_METHODS))
def test_a_region_map_stays_off_the_other_regions(region_maps, method):
    leaks = []
    for h, _, others in region_maps[method]:
        pos = np.clip(h, 0, None)
        leaks += [float(pos[m].sum()) / max(float(pos.sum()), 1e-12) for m in others]
    assert len(leaks) >= 10 and max(leaks) < 0.2, f"{method}: worst {max(leaks):.3f}"
