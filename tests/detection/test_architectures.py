"""Detector and segmenter architectures as users export them (issue 22), with random weights.

- an ultralytics YOLOv8n (``YOLO("yolov8n.yaml").export(format="onnx")``, layout ``yolov8``);
- an SSD-lite written here whose graph ends in ONNX ``NonMaxSuppression`` and gives post-NMS
  boxes, labels, scores and batch indices (layout ``boxes``; torchvision is not importable on
  this CPU torch, so its SSD cannot be built);
- a DeepLab-style segmenter on a timm ``features_only`` backbone (ASPP-like head, upsampled),
  exported with ``onnxviz.convert.pytorch.convert(task="segment")``.

Each loads without ``task=`` or ``layout=``, computes what the framework computes, predicts what
the framework (ultralytics' NMS, the graph's own post-NMS outputs) predicts, and explains with
every method that applies to it (``all``) without a refusal. Exports are made once per session
under pytest's temporary folder.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxviz as ov
from onnxviz.errors import ModelError
from onnxviz.explainers import options as opts
from onnxviz.explainers.boxes import BoxView, feature_levels
from onnxviz.imageio import resize

from tests.zoo.timm_shim import register_torchvision_ops

torch = pytest.importorskip("torch")

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


def _photo(h: int, w: int) -> np.ndarray:
    from skimage import data

    return resize(data.astronaut(), (h, w))


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


# ---- ultralytics YOLOv8n ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def yolov8n(tmp_path_factory):
    """(the ultralytics torch model, its ONNX export at 96 px). Random weights, re-drawn with a
    variance-keeping init (ultralytics' own init makes activations vanish by the head, so every
    anchor would score the same) and class logits spread, so that scores differ."""
    folder = tmp_path_factory.mktemp("yolov8n")
    env = {k: os.environ.get(k) for k in ("YOLO_CONFIG_DIR", "YOLO_OFFLINE")}
    os.environ.update(YOLO_CONFIG_DIR=str(folder), YOLO_OFFLINE="1")
    register_torchvision_ops()
    here = os.getcwd()
    try:
        from ultralytics import YOLO

        torch.manual_seed(0)
        yolo = YOLO("yolov8n.yaml")
        head = yolo.model.model[-1]
        with torch.no_grad():
            for m in yolo.model.modules():
                if isinstance(m, torch.nn.Conv2d) and m.weight.requires_grad:  # not DFL's
                    torch.nn.init.kaiming_normal_(m.weight)
            for seq in head.cv3:
                seq[-1].weight.mul_(100.0)
                seq[-1].bias.fill_(-2.0)
        os.chdir(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = yolo.export(format="onnx", imgsz=96, simplify=False)
    finally:
        os.chdir(here)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return yolo.model.eval(), folder / os.path.basename(path)


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


def test_yolov8n_predicts_what_ultralytics_nms_keeps(yolov8n):
    from ultralytics.utils.nms import non_max_suppression

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
        np.testing.assert_allclose(e.extras["box"], d.xyxy[0], atol=0.01)
        assert e.heatmap.shape == m.input.size, method


# ---- an SSD-lite whose graph ends in NonMaxSuppression --------------------------------------

SSD_SIZE, SSD_LABELS = 64, ["cat", "dog", "bird"]


class SSDLite(torch.nn.Module):
    """Depthwise-separable backbone, two feature levels (stride 8: 8x8, stride 16: 4x4), one
    prior box per cell, SSD's box coding (variances 0.1, 0.2) and softmax classes with a
    background class, dropped before NMS. Returns what NMS reads: boxes ``(N, A, 4)`` x0, y0,
    x1, y1 in input pixels and scores ``(N, C, A)``."""

    def __init__(self, classes: int = len(SSD_LABELS), size: int = SSD_SIZE):
        super().__init__()
        nn = torch.nn

        def sep(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin),
                                 nn.BatchNorm2d(cin), nn.ReLU6(), nn.Conv2d(cin, cout, 1),
                                 nn.BatchNorm2d(cout), nn.ReLU6())

        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6(), sep(8, 16, 2),
                                  sep(16, 16, 2))
        self.down = sep(16, 24, 2)
        self.loc = nn.ModuleList([nn.Conv2d(16, 4, 3, padding=1), nn.Conv2d(24, 4, 3, padding=1)])
        self.conf = nn.ModuleList([nn.Conv2d(16, classes + 1, 3, padding=1),
                                   nn.Conv2d(24, classes + 1, 3, padding=1)])
        priors = []
        for stride in (8, 16):
            g = size // stride
            gy, gx = np.mgrid[:g, :g]
            priors.append(np.stack([(gx.ravel() + 0.5) * stride, (gy.ravel() + 0.5) * stride,
                                    np.full(g * g, 2.0 * stride), np.full(g * g, 2.0 * stride)],
                                   axis=1))
        self.register_buffer("priors", torch.tensor(np.concatenate(priors), dtype=torch.float32))

    def forward(self, x):
        f1 = self.stem(x)
        f2 = self.down(f1)
        loc = torch.cat([h(f).flatten(2) for h, f in zip(self.loc, (f1, f2))], 2).transpose(1, 2)
        conf = torch.cat([h(f).flatten(2) for h, f in zip(self.conf, (f1, f2))], 2)
        p = self.priors
        cxy = p[:, :2] + loc[..., :2] * 0.1 * p[:, 2:]
        wh = p[:, 2:] * torch.exp(loc[..., 2:] * 0.2)
        return torch.cat([cxy - wh / 2, cxy + wh / 2], 2), torch.softmax(conf * 4, 1)[:, 1:]


def _append_nms(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The exported (boxes, scores) followed by NonMaxSuppression and the gathers of an SSD
    export: outputs boxes ``[K, 4]``, labels ``[K]``, scores ``[K]``, batch_index ``[K]``."""
    inits = [numpy_helper.from_array(np.array([10], np.int64), "max_out"),
             numpy_helper.from_array(np.array([0.45], np.float32), "iou"),
             numpy_helper.from_array(np.array([0.05], np.float32), "thr"),
             numpy_helper.from_array(np.array(0, np.int64), "col0"),
             numpy_helper.from_array(np.array(1, np.int64), "col1"),
             numpy_helper.from_array(np.array([0, 2], np.int64), "col02")]
    nodes = [helper.make_node("NonMaxSuppression", ["pre_boxes", "pre_scores", "max_out", "iou",
                                                    "thr"], ["selected"], name="nms"),
             helper.make_node("Gather", ["selected", "col0"], ["batch_index"], axis=1),
             helper.make_node("Gather", ["selected", "col1"], ["labels"], axis=1),
             helper.make_node("Gather", ["selected", "col02"], ["image_anchor"], axis=1),
             helper.make_node("GatherND", ["pre_boxes", "image_anchor"], ["boxes"]),
             helper.make_node("GatherND", ["pre_scores", "selected"], ["scores"])]
    proto.graph.node.extend(nodes)
    proto.graph.initializer.extend(inits)
    del proto.graph.output[:]
    proto.graph.output.extend([
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["K", 4]),
        helper.make_tensor_value_info("labels", TensorProto.INT64, ["K"]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["K"]),
        helper.make_tensor_value_info("batch_index", TensorProto.INT64, ["K"])])
    proto.metadata_props.add(key="onnxviz.preprocess", value=json.dumps({"preset": "unit"}))
    proto.metadata_props.add(key="onnxviz.labels", value=json.dumps(SSD_LABELS))
    onnx.checker.check_model(proto)
    return proto


@pytest.fixture(scope="session")
def ssd(tmp_path_factory):
    """(torch SSD-lite, path of its head alone, path of the graph ending in NMS)."""
    folder = tmp_path_factory.mktemp("ssd")
    torch.manual_seed(0)
    net = SSDLite().eval()
    head = folder / "ssd_head.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, SSD_SIZE, SSD_SIZE), str(head),
                          input_names=["x"], output_names=["pre_boxes", "pre_scores"],
                          dynamic_axes={"x": {0: "n"}, "pre_boxes": {0: "n"},
                                        "pre_scores": {0: "n"}}, opset_version=17, dynamo=False)
    full = folder / "ssd_nms.onnx"
    onnx.save(_append_nms(onnx.load(head)), full)
    return net, head, full


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

SEG_LABELS = ["background", "sky", "road", "person"]


@pytest.fixture(scope="session")
def deeplab(tmp_path_factory):
    """(torch segmenter, ONNX path): timm ``mobilenetv3_small_050`` features at strides 4 and
    16, two ASPP branches (1x1 and 3x3 dilated 2) on the deep one, upsampled and joined with the
    projected shallow one (DeepLabv3+'s decoder), logits upsampled to the input."""
    from tests.zoo.timm_shim import import_timm

    timm = import_timm()
    nn, F = torch.nn, torch.nn.functional

    class DeepLab(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = timm.create_model("mobilenetv3_small_050", pretrained=False,
                                          features_only=True, out_indices=(1, 3))
            low, high = self.body.feature_info.channels()
            self.aspp = nn.ModuleList([nn.Conv2d(high, 16, 1),
                                       nn.Conv2d(high, 16, 3, padding=2, dilation=2)])
            self.low = nn.Conv2d(low, 8, 1)
            self.cls = nn.Conv2d(40, len(SEG_LABELS), 3, padding=1)

        def forward(self, x):
            lo, hi = self.body(x)
            a = torch.cat([F.relu(c(hi)) for c in self.aspp], 1)
            a = F.interpolate(a, size=lo.shape[2:], mode="bilinear", align_corners=False)
            y = self.cls(torch.cat([a, F.relu(self.low(lo))], 1))
            return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)

    from onnxviz.convert.pytorch import convert

    torch.manual_seed(0)
    net = DeepLab().eval()
    path = tmp_path_factory.mktemp("deeplab") / "deeplab.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert(net, path, input_size=(64, 64), task="segment", labels=SEG_LABELS)
    return net, path


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


# ---- ODAM of a box's coordinates --------------------------------------------------------------

@pytest.mark.parametrize("output, column", [("x0", 0), ("y1", 3), ("w", None), ("cy", None)])
def test_odam_of_a_box_coordinate_equals_torch(ssd, output, column):
    """ODAM with ``box_output`` a coordinate: the explained value equals the torch network's,
    its input gradient equals torch.autograd's, and the map at the box's level equals
    ``ReLU(sum_k dv/dA_k * A_k)`` computed with torch hooks on the same module."""
    net, _, path = ssd
    m = ov.load(path)
    photo = _photo(64, 64)
    d = m.predict(photo, score_threshold=0.0)
    k = 0
    anchor = int(d.anchor[k])
    x = m.preprocess(photo)

    def value(boxes):
        b = boxes[0, anchor]
        return {"w": b[2] - b[0], "cy": (b[1] + b[3]) / 2}.get(output, b[column] if column
                                                                  is not None else None)

    (e,) = ov.explain(m, photo, "odam", target=k, box_output=output, score_threshold=0.0)
    assert e.extras["box_output"] == output and e.params["box_output"] == output
    layer = e.extras["layer"]
    module = dict(net.named_modules())[layer]
    seen = {}
    hook = module.register_forward_hook(lambda mod, a, o: seen.__setitem__("a", o))
    xt = torch.from_numpy(x).requires_grad_(True)
    v = value(net(xt)[0])
    hook.remove()
    np.testing.assert_allclose(e.score, float(v.detach()), rtol=1e-5, atol=1e-4)
    grad_a, grad_x = torch.autograd.grad(v, [seen["a"], xt])
    want = torch.relu((grad_a * seen["a"]).sum(1))[0].detach().numpy()
    got = np.asarray(e.raw).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(np.abs(want).max(), 1e-6))
    view = BoxView(m, [anchor], [int(d.class_id[k])], ["box"], output)
    grads, _, _ = view.gradients(x, np.ones((1, 1), np.float32), [m.input.name])
    gx = grad_x.numpy()
    np.testing.assert_allclose(grads[m.input.name], gx, rtol=0, atol=1e-4 * np.abs(gx).max())


def test_odam_box_output_is_checked_and_declared(ssd):
    from onnxviz.explainers.registry import get

    assert get("odam").option_specs()["box_output"].choices == (
        "score", "cx", "cy", "w", "h", "x0", "y0", "x1", "y1")
    m = ov.load(ssd[2])
    with pytest.raises(ov.OptionError, match="box_output must be one of") as e:
        ov.explain(m, _photo(64, 64), "odam", box_output="area", score_threshold=0.0)
    assert "\n" not in str(e.value)
    (plain,) = ov.explain(m, _photo(64, 64), "odam", target=0, score_threshold=0.0)
    assert "box_output" not in plain.extras and "box_output" not in plain.params


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
def test_box_coordinates_are_read_from_the_head_in_both_layouts(layout):
    """A box view of coordinates gives the decoded box's values (inline cell detector)."""
    from onnxviz.detection import decode

    from tests.detection.test_tasks import detector

    m = ov.load(detector(layout))
    x = m.preprocess(_photo(32, 32))
    cands = decode(m.run(x, [m.score_output])[m.score_output][0], layout)
    anchors, classes = [5, 17, 42], [0, 2, 1]
    xyxy = cands.xyxy[anchors].astype(np.float64)
    want = {"x0": xyxy[:, 0], "y0": xyxy[:, 1], "x1": xyxy[:, 2], "y1": xyxy[:, 3],
            "cx": xyxy[:, [0, 2]].mean(1), "cy": xyxy[:, [1, 3]].mean(1),
            "w": xyxy[:, 2] - xyxy[:, 0], "h": xyxy[:, 3] - xyxy[:, 1],
            "score": cands.probs[anchors, classes]}
    for output, values in want.items():
        view = BoxView(m, anchors, classes, ["a", "b", "c"], output)
        np.testing.assert_allclose(view.forward(x)[0], values, rtol=1e-6, atol=1e-5,
                                   err_msg=output)
