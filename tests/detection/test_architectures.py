"""Detector and segmenter architectures as users export them (issue 22), with random weights
(the models: ``arch_models.py``).

Each loads without ``task=`` or ``layout=``, computes what the framework computes, predicts what
the framework (ultralytics' NMS, the graph's own post-NMS outputs) predicts, and explains with
every method that applies to it (``all``) without a refusal.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

import onnxviz as ov
from onnxviz.errors import ModelError
from onnxviz.explainers import options as opts
from onnxviz.explainers.boxes import BoxView, feature_levels

from tests.detection.arch_models import SEG_LABELS, SSD_LABELS, SSD_SIZE, deeplab, ssd, yolov8n  # noqa: F401
from tests.detection.arch_models import photo as _photo

#: Light settings so that every method runs in about a second on a 2-core machine.
LIGHT = {
    "occlusion": {"patch": 16, "stride": 16},
    "lime": {"num_samples": 30, "segmentation": "slic", "n_segments": 12},
    "kernelshap": {"num_samples": 30, "segmentation": "slic", "n_segments": 12},
    "rise": {"num_masks": 30},
    "drise": {"num_masks": 30},
    "smoothgrad": {"samples": 2},
    "integrated_gradients": {"steps": 4},
    "gradient_shap": {"samples": 2},
    "deeplift_shap": {"samples": 2},
}


def _every_method(model, photo, target, **extra) -> dict:
    """Each applicable method's explanations of ``photo``; a refusal fails the test."""
    out = {}
    for method in opts.for_model(opts.parse_methods("all"), "all", model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = ov.explain(model, photo, method, target=target,
                               **LIGHT.get(method, {}), **extra)
        assert found, method
        for e in found:
            assert e.heatmap.ndim == 2 and np.isfinite(e.heatmap).all(), method
        out[method] = found
    return out



def test_yolov8n_loads_as_a_detector_and_computes_ultralytics_head(yolov8n):
    net, path = yolov8n
    m = ov.load(path, preprocess="unit")  # ultralytics feeds pixels / 255
    assert (m.task, m.layout, m.num_classes) == ("detect", "yolov8", 80)
    x = m.preprocess(_photo(96, 96))
    with torch.no_grad():
        want = net(torch.from_numpy(x))[0].numpy()
    got = m.run(x, [m.score_output])[m.score_output]
    assert got.shape == want.shape == (1, 84, 144 + 36 + 9)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert [(a, b) for a, b, _ in feature_levels(m)] == [(0, 144), (144, 180), (180, 189)]


def test_yolov8n_predicts_what_ultralytics_nms_keeps(yolov8n, monkeypatch):
    from ultralytics.utils.nms import non_max_suppression

    # ultralytics calls torchvision's NMS once anything has imported torchvision (grad-cam,
    # transformers: tests/explainers), and torchvision's C++ ops do not load on this CPU torch;
    # without it, ultralytics runs its own torch NMS, whichever tests ran before
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)

    net, path = yolov8n
    m = ov.load(path, preprocess="unit")
    photo = _photo(150, 120)  # not the input's size: boxes are mapped back through the resize
    x = m.preprocess(photo)
    raw = m.run(x, [m.score_output])[m.score_output]
    best = np.sort(raw[0, 4:].max(axis=0))
    thr = float((best[-40] + best[-41]) / 2)  # between two scores: > and >= agree
    want = non_max_suppression(torch.from_numpy(raw), conf_thres=thr, iou_thres=0.45)[0].numpy()
    d = m.predict(photo, score_threshold=thr, iou_threshold=0.45)
    assert 0 < len(d) == len(want) < 40  # some boxes were suppressed
    np.testing.assert_array_equal(d.class_id, want[:, 5].astype(int))
    np.testing.assert_allclose(d.confidence, want[:, 4], rtol=1e-6)
    scale = np.array([120 / 96, 150 / 96, 120 / 96, 150 / 96])
    np.testing.assert_allclose(d.xyxy, want[:, :4] * scale, rtol=1e-5, atol=1e-3)


def test_yolov8n_explains_a_box_with_every_method(yolov8n):
    _, path = yolov8n
    m = ov.load(path, preprocess="unit")
    methods = opts.for_model(opts.parse_methods("all"), "all", m)
    assert {"drise", "odam", "gradcam", "eigencam"} <= set(methods) and "cam" not in methods
    photo = _photo(100, 120)
    done = _every_method(m, photo, target=0, score_threshold=0.5)
    d = m.predict(photo, score_threshold=0.5)
    for method, found in done.items():
        (e,) = found
        assert e.extras["anchor"] == int(d.anchor[0]), method
        assert e.extras["explained_tensor"] == m.score_output
        np.testing.assert_allclose(e.box, d.xyxy[0], atol=0.01)
        assert e.heatmap.shape == m.input.size, method



def test_ssd_with_nms_loads_as_boxes_layout(ssd):
    _, _, path = ssd
    m = ov.load(path)
    assert (m.task, m.layout, m.num_classes, m.labels) == ("detect", "boxes", 3, SSD_LABELS)
    assert (m.nms.boxes, m.nms.scores, m.nms.node) == ("pre_boxes", "pre_scores", "nms")
    assert m.shape_of(m.score_output)[1:] == (4 + 3, 64 + 16)
    assert any("NonMaxSuppression 'nms'" in n for n in m.notes)
    assert "boxes detector" in repr(m)


def test_ssd_head_without_nms_is_refused_in_one_line(ssd):
    _, head, _ = ssd
    with pytest.raises(ModelError, match="--task.*--layout") as e:
        ov.load(head)  # boxes [N, 80, 4]: a 3-D output whose shape tells no layout
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="has none.*output=") as e:
        ov.load(head, layout="boxes")
    assert "\n" not in str(e.value)


def test_ssd_predicts_the_graphs_own_post_nms_outputs(ssd):
    import onnxruntime as ort

    _, _, path = ssd
    m = ov.load(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    photos = [_photo(80, 64), _photo(64, 96)[::-1].copy()]
    found = m.predict(photos, score_threshold=0.0, max_detections=100)
    for photo, d in zip(photos, found):
        boxes, labels, scores, batch = sess.run(None, {"x": m.preprocess(photo)})
        assert 0 < len(d) == len(scores) and set(batch) == {0}
        order = np.argsort(-scores, kind="stable")
        h, w = photo.shape[:2]
        scale = np.array([w, h, w, h]) / SSD_SIZE
        np.testing.assert_allclose(d.xyxy, boxes[order] * scale, rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(d.class_id, labels[order])
        np.testing.assert_allclose(d.confidence, scores[order], rtol=1e-6)
        assert d.labels == [SSD_LABELS[c] for c in labels[order]]
    # the threshold and the cap apply on top of the graph's own NMS
    few = m.predict(photos[0], score_threshold=float(found[0].confidence[2]), max_detections=2)
    np.testing.assert_array_equal(few.anchor, found[0].anchor[:2])


def test_ssd_box_score_gradient_equals_torch(ssd):
    """The explained score of a detection is the element of the scores NMS reads; its input
    gradient equals torch.autograd's on the same network."""
    net, _, path = ssd
    m = ov.load(path)
    photo = _photo(64, 64)
    d = m.predict(photo, score_threshold=0.0)
    x = m.preprocess(photo)
    view = BoxView(m, d.anchor[:3], d.class_id[:3], ["a", "b", "c"])
    np.testing.assert_allclose(view.forward(x)[0], d.confidence[:3], rtol=1e-6)
    for k in range(3):
        seed = np.eye(3, dtype=np.float32)[k:k + 1]
        grads, _, _ = view.gradients(x, seed, [m.input.name])
        xt = torch.from_numpy(x).requires_grad_(True)
        score = net(xt)[1][0, int(d.class_id[k]), int(d.anchor[k])]
        (want,) = torch.autograd.grad(score, xt)
        want = want.numpy()
        np.testing.assert_allclose(grads[m.input.name], want, rtol=0,
                                   atol=1e-4 * np.abs(want).max())


def test_ssd_explains_each_detection_with_every_method(ssd):
    _, _, path = ssd
    m = ov.load(path)
    methods = opts.for_model(opts.parse_methods("all"), "all", m)
    assert {"drise", "odam", "gradcam"} <= set(methods) and "cam" not in methods
    photo = _photo(80, 64)
    d = m.predict(photo, score_threshold=0.0)
    done = _every_method(m, photo, target=1, score_threshold=0.0)
    for method, (e,) in done.items():
        assert e.extras["explained_tensor"] == "pre_scores" and e.extras["nms_node"] == "nms"
        assert e.extras["anchor"] == int(d.anchor[1]) and e.target == int(d.class_id[1])
        assert e.heatmap.shape == m.input.size, method
    # a user's box is matched to the candidate of its class that overlaps it most
    h, w = photo.shape[:2]
    inside = [k for k, b in enumerate(d.xyxy) if b[0] >= 0 and b[1] >= 0 and b[2] <= w
              and b[3] <= h]
    k = inside[0]
    box = [float(v) for v in d.xyxy[k]]
    (e,) = ov.explain(m, photo, "saliency", target={"box": box, "label": d.labels[k]})
    assert e.extras["anchor"] == int(d.anchor[k])
    # the CAMs draw each box at its own feature level (8x8 anchors first, then 4x4)
    assert [(a, b) for a, b, _ in feature_levels(m)] == [(0, 64), (64, 80)]


# ---- a DeepLab-style segmenter on a timm backbone ------------------------------------------

def test_deeplab_loads_predicts_and_computes_torch_logits(deeplab):
    net, path = deeplab
    m = ov.load(path)
    assert (m.task, m.layout, m.num_classes) == ("segment", None, 4)
    photo = _photo(90, 70)
    x = m.preprocess(photo)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = m.run(x, [m.score_output])[m.score_output]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    seg = m.predict(photo)
    assert seg.class_map.shape == (90, 70)
    assert abs(sum(seg.areas.values()) - 1) < 1e-9
    assert set(seg.areas) == {SEG_LABELS[c] for c in np.unique(seg.class_map)}


def test_deeplab_explains_each_region_with_every_method(deeplab):
    _, path = deeplab
    m = ov.load(path)
    methods = opts.for_model(opts.parse_methods("all"), "all", m)
    assert "cam" not in methods and "odam" not in methods and "drise" not in methods
    assert {"gradcam", "saliency", "occlusion"} <= set(methods)
    photo = _photo(90, 70)
    regions = list(m.predict(photo).areas)
    done = _every_method(m, photo, target=None)
    for method, found in done.items():
        assert [e.extras["region_label"] for e in found] == [
            f"{r} region" for r in sorted(regions, key=SEG_LABELS.index)], method
        assert all(e.heatmap.shape == m.input.size for e in found), method


def test_cam_and_odam_are_refused_by_name_where_they_cannot_apply(deeplab, ssd):
    seg = ov.load(deeplab[1])
    det = ov.load(ssd[2])
    photo = _photo(64, 64)
    with pytest.raises(ov.OptionError, match="odam explains the boxes of object detectors"):
        ov.explain(seg, photo, "odam")
    from onnxviz.explainers.registry import get

    assert "segment model" in get("odam").applies_to(seg)
    assert "use gradcam" in get("cam").applies_to(det)
    assert get("cam").applies_to(seg) and get("odam").applies_to(det) is None

