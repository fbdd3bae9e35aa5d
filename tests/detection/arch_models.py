"""The detector and segmenter architectures of the architecture tests (issue 22), random weights,
exported once per session under pytest's temporary folder (fixtures shared by
``test_architectures.py`` and ``test_box_coordinates.py``, which import them):

- ``yolov8n``: an ultralytics YOLOv8n, ``YOLO("yolov8n.yaml").export(format="onnx")`` at 96 px;
- ``ssd``: an SSD-lite written here whose graph ends in ONNX ``NonMaxSuppression`` and gives
  post-NMS boxes, labels, scores and batch indices (torchvision is not importable on this CPU
  torch, so its SSD cannot be built);
- ``deeplab``: a DeepLabv3+-style segmenter on a timm ``features_only`` backbone, exported with
  ``onnxviz.convert.pytorch.convert(task="segment")``.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnxviz.imageio import resize

from tests.zoo.timm_shim import register_torchvision_ops


def photo(h: int, w: int) -> np.ndarray:
    """skimage's astronaut at (h, w)."""
    from skimage import data

    return resize(data.astronaut(), (h, w))


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

