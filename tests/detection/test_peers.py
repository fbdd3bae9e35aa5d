"""Grad-CAM of a box and of a region against pytorch-grad-cam 1.5.7 on the torch twins (issue 22).

The twins are the detector and U-Net of ``models/train_scenes.py`` with random weights (torch
seed 0), exported with torch's TorchScript exporter. For a box, the peer's target is the same
element of the decoded head, ``out[4 + c, a]``, at the same layer (the box's feature level, which
onnxviz finds by itself); for a region, the peer's ``SemanticSegmentationTarget`` with the same
class and mask. pytorch-grad-cam scales each map to [0, 1] (``scale_cam_image``), so onnxviz's
layer map is scaled the same way before comparing.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.explainers.cam_options import peer_scaled

torch = pytest.importorskip("torch")
SIZE = 96


@pytest.fixture(scope="module")
def peer():
    from tests.zoo.timm_shim import register_torchvision_ops

    register_torchvision_ops()  # pytorch-grad-cam imports torchvision
    return pytest.importorskip("pytorch_grad_cam")


def _export(net, path):
    from torch_export_helpers import export_onnx

    export_onnx(net, path, SIZE, output="out")
    return ov.load(path, preprocess="unit")


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    from models.train_scenes import ShapesDetector, ShapesSegmenter

    d = tmp_path_factory.mktemp("twins")
    torch.manual_seed(0)
    det = ShapesDetector().eval()
    torch.manual_seed(0)
    seg = ShapesSegmenter().eval()
    return det, _export(det, d / "det.onnx"), seg, _export(seg, d / "seg.onnx")


def _photo():
    from models.scenes import make_scenes

    return make_scenes(1, seed=5).images[0]


def test_box_gradcam_equals_the_peer(twins, peer):
    from pytorch_grad_cam import GradCAM

    from onnxviz.explainers.boxes import feature_levels

    det, m, _, _ = twins
    assert (m.task, m.layout, m.num_classes) == ("detect", "yolov8", 3)
    levels = feature_levels(m)
    assert [(a, b) for a, b, _ in levels] == [(0, 144), (144, 180)]
    found = ov.explain(m, _photo(), method="gradcam", max_detections=4)
    assert found
    x = torch.from_numpy(m.normalize(m.to_pixels(_photo())))
    for e in found:
        a, c = e.extras["anchor"], e.target
        module = det.head8[0] if a < 144 else det.head16[0]
        with GradCAM(model=det, target_layers=[module]) as cam:
            want = cam(input_tensor=x, targets=[lambda out, a=a, c=c: out[4 + c, a]])[0]
        got = peer_scaled([e.raw[None]], (SIZE, SIZE))[0]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_region_gradcam_equals_semantic_segmentation_target(twins, peer):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    _, _, seg, m = twins
    assert (m.task, m.num_classes) == ("segment", 4)
    layer = [lay.name for lay in m.layers() if "dec1" in lay.name][-1]  # the ReLU: dec1's output
    found = ov.explain(m, _photo(), method="gradcam", layer=layer)
    x = torch.from_numpy(m.normalize(m.to_pixels(_photo())))
    predicted = seg(x)[0].argmax(0).numpy()
    assert found
    for e in found:
        mask = (predicted == e.target).astype(np.float32)
        with GradCAM(model=seg, target_layers=[seg.dec1]) as cam:
            want = cam(input_tensor=x, targets=[SemanticSegmentationTarget(e.target, mask)])[0]
        got = peer_scaled([e.raw[None]], (SIZE, SIZE))[0]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
