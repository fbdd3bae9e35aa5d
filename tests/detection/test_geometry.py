"""The detection room's geometry against brute force: IoU by counting pixels, NMS by its two
defining properties, decoding of both head layouts, box matching and D-RISE's weights written
out as loops (Petsiuk et al. 2021, eq. 2-3)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxviz.detection import (
    Candidates,
    box_iou,
    decode,
    drise_weights,
    guess_layout,
    match_box,
    nms,
    scale_boxes,
)
from onnxviz.detection.boxes import detections
from onnxviz.detection.layouts import check_layout, score_index
from onnxviz.errors import ModelError, TargetError


def _random_boxes(rng, n, side=40):
    xy = rng.integers(0, side - 2, (n, 2))
    wh = rng.integers(1, side // 2, (n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, side)], axis=1).astype(np.float64)


def test_iou_counts_pixels():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 12), _random_boxes(rng, 9)

    def mask(box):
        m = np.zeros((40, 40), bool)
        x0, y0, x1, y1 = box.astype(int)
        m[y0:y1, x0:x1] = True
        return m

    ious = box_iou(a, b)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            mp, mq = mask(p), mask(q)
            expected = (mp & mq).sum() / (mp | mq).sum()
            assert ious[i, j] == pytest.approx(expected, abs=1e-12)
    assert box_iou([0, 0, 0, 5], [0, 0, 0, 5])[0, 0] == 0.0  # empty boxes


def _cands(xyxy, scores):
    scores = np.asarray(scores, np.float32)
    return Candidates(np.asarray(xyxy, np.float32), scores, np.ones(len(scores), np.float32),
                      scores)


def test_nms_keeps_what_it_must_and_only_that():
    rng = np.random.default_rng(1)
    n, c = 200, 3
    boxes = _random_boxes(rng, n, side=60)
    scores = rng.random((n, c)).astype(np.float32)
    cands = _cands(boxes, scores)
    kept, cls = nms(cands, score_threshold=0.5, iou_threshold=0.4)
    best = scores.argmax(1)
    conf = scores[np.arange(n), best]
    assert np.all(np.diff(conf[kept]) <= 0)  # best first
    assert np.array_equal(cls, best[kept])
    for k in range(c):  # kept boxes of one class overlap by at most the threshold
        same = kept[cls == k]
        iou = box_iou(boxes[same], boxes[same])
        np.fill_diagonal(iou, 0)
        assert iou.max(initial=0) <= 0.4
    dropped = [i for i in range(n) if conf[i] >= 0.5 and i not in set(kept)]
    for i in dropped:  # every dropped candidate is covered by a better kept one of its class
        mates = [k for k in kept if best[k] == best[i] and conf[k] >= conf[i]]
        assert box_iou(boxes[i], boxes[mates]).max() > 0.4
    assert all(conf[i] >= 0.5 for i in kept)
    few, _ = nms(cands, score_threshold=0.5, iou_threshold=0.4, max_detections=3)
    assert np.array_equal(few, kept[:3])


def _nms_by_class(xyxy, scores, threshold, iou_threshold, max_detections):
    """Greedy NMS as its definition reads: class by class, best first, then all kept boxes
    sorted by score (the reference for the compiled loop)."""
    cls = scores.argmax(1)
    conf = scores[np.arange(len(cls)), cls]
    kept = []
    for c in np.unique(cls):
        members = [i for i in np.argsort(-conf, kind="stable") if cls[i] == c and
                   conf[i] >= threshold]
        alive = dict.fromkeys(members, True)
        for n, i in enumerate(members):
            if alive[i]:
                kept.append(i)
                for j in members[n + 1:]:
                    if box_iou(xyxy[i], xyxy[j])[0, 0] > iou_threshold:
                        alive[j] = False
    kept = sorted(kept, key=lambda i: -conf[i])  # stable: ties keep class order
    return np.asarray(kept[:max_detections], np.int64)


@pytest.mark.parametrize("seed", [3, 4])
def test_nms_equals_its_definition(seed):
    rng = np.random.default_rng(seed)
    n, c = 300, 4
    boxes = _random_boxes(rng, n, side=60)
    scores = rng.random((n, c)).astype(np.float32)
    scores[rng.integers(0, n, 40)] = scores[0]  # ties across and within classes
    cands = _cands(boxes, scores)
    for top in (300, 7, 1):
        kept, cls = nms(cands, score_threshold=0.3, iou_threshold=0.35, max_detections=top)
        expected = _nms_by_class(boxes, scores, 0.3, 0.35, top)
        assert np.array_equal(kept, expected)
        assert np.array_equal(cls, scores.argmax(1)[expected])


def test_decode_both_layouts():
    rng = np.random.default_rng(2)
    a, c = 30, 4
    centre = rng.uniform(10, 50, (a, 2))
    size = rng.uniform(2, 10, (a, 2))
    probs = rng.random((a, c)).astype(np.float32)
    obj = rng.random(a).astype(np.float32)
    v8 = np.concatenate([centre, size, probs], axis=1).T  # (4 + C, A)
    v5 = np.concatenate([centre, size, obj[:, None], probs], axis=1)  # (A, 5 + C)
    assert guess_layout((1, *v8.shape)) == "yolov8" and guess_layout((1, *v5.shape)) == "yolov5"
    expected = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    d8, d5 = decode(v8, "yolov8"), decode(v5, "yolov5")
    for d in (d8, d5):
        np.testing.assert_allclose(d.xyxy, expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(d8.scores, probs, rtol=1e-6)
    np.testing.assert_allclose(d5.scores, probs * obj[:, None], rtol=1e-6)
    np.testing.assert_allclose(d5.probs, probs, rtol=1e-6)
    assert v8[score_index("yolov8", 7, 2, c)] == probs[7, 2]
    assert v5[score_index("yolov5", 7, 2, c)] == probs[7, 2]


def test_layout_guesses_and_refusals():
    assert guess_layout((1, 84, 1029)) == "yolov8"
    assert guess_layout((1, 25200, 85)) == "yolov5"
    assert guess_layout((1, 1000)) is None and guess_layout((1, 10, 10)) is None
    with pytest.raises(ModelError, match="yolov8.*yolov5"):
        check_layout("ssd", (1, 84, 100))
    with pytest.raises(ModelError, match="3-D"):
        check_layout("yolov8", (1, 1000))
    with pytest.raises(ModelError, match="class 9"):
        score_index("yolov8", 0, 9, 4)


def test_scale_boxes_round_trip():
    box = np.array([[10, 20, 30, 60]], np.float32)
    there = scale_boxes(box, (64, 64), (300, 451))
    np.testing.assert_allclose(there, [[10 * 451 / 64, 20 * 300 / 64, 30 * 451 / 64,
                                        60 * 300 / 64]], rtol=1e-6)
    np.testing.assert_allclose(scale_boxes(there, (300, 451), (64, 64)), box, rtol=1e-5)


def test_detections_and_matching():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40], [31, 30, 41, 40]]
    scores = [[0.9, 0.1], [0.8, 0.1], [0.1, 0.7], [0.2, 0.1]]
    cands = _cands(boxes, scores)
    d = detections(cands, (64, 64), (128, 64), lambda k: ["a", "b"][k], score_threshold=0.5)
    assert d.anchor.tolist() == [0, 2] and d.class_id.tolist() == [0, 1]
    np.testing.assert_allclose(d.xyxy[1], [30, 60, 40, 80])  # back in the photo's pixels
    assert d.records()[0] == {"box": [0.0, 0.0, 10.0, 20.0], "label": "a", "class": 0,
                              "score": pytest.approx(0.9)}
    anchor, iou = match_box(cands, [30, 29, 40, 41], 1)
    assert anchor == 2 and iou == pytest.approx(100 / 120)
    anchor, _ = match_box(cands, [31, 30, 41, 40], 0)  # class 0 among anchors 0, 1, 3: 3
    assert anchor == 3
    with pytest.raises(TargetError, match="empty"):
        match_box(cands, [5, 5, 5, 9], 0)
    with pytest.raises(TargetError, match="overlaps no box"):
        match_box(cands, [50, 50, 60, 60], 0)


def test_drise_weights_as_the_paper_writes_them():
    rng = np.random.default_rng(3)
    a, c = 25, 3
    cands = Candidates(_random_boxes(rng, a).astype(np.float32),
                       rng.random((a, c)).astype(np.float32),
                       rng.random(a).astype(np.float32), rng.random((a, c)).astype(np.float32))
    targets, classes = _random_boxes(rng, 4), np.array([0, 2, 1, 2])
    got = drise_weights(cands, targets, classes)
    for t in range(4):
        onehot = np.eye(c)[classes[t]]
        best = 0.0
        for j in range(a):
            p = cands.probs[j].astype(np.float64)
            cos = onehot @ p / (np.linalg.norm(onehot) * np.linalg.norm(p))
            best = max(best, box_iou(targets[t], cands.xyxy[j])[0, 0] * cands.objectness[j] * cos)
        assert got[t] == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
def test_drise_weights_batch_equals_one_at_a_time(layout):
    from onnxviz.detection.layouts import drise_weights_batch

    rng = np.random.default_rng(4)
    n, a, c = 5, 30, 3
    centre, size = rng.uniform(5, 35, (n, a, 2)), rng.uniform(1, 12, (n, a, 2))
    probs, obj = rng.random((n, a, c)), rng.random((n, a, 1))
    raws = (np.concatenate([centre, size, probs], 2).transpose(0, 2, 1) if layout == "yolov8"
            else np.concatenate([centre, size, obj, probs], 2)).astype(np.float32)
    targets, classes = _random_boxes(rng, 4), np.array([0, 2, 1, 2])
    want = np.stack([drise_weights(decode(r, layout), targets, classes) for r in raws])
    np.testing.assert_allclose(drise_weights_batch(raws, layout, targets, classes), want,
                               rtol=1e-6, atol=1e-9)
