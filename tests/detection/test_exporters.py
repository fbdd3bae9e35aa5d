"""The scenes detector exported with both torch exporters (issue 22: "Export it with both torch
exporters"): TorchScript and ``dynamo=True`` give different graphs of the same function; each is
recognised as a ``yolov8`` detector without options, predicts what torch predicts, and each box's
input gradient (through the logit twin) equals torch's gradient of the class logit.
"""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov

torch = pytest.importorskip("torch")
SIZE = 96


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from models.train_scenes import ShapesDetector

    torch.manual_seed(3)
    net = ShapesDetector().eval()
    d = tmp_path_factory.mktemp("exporters")
    out = {}
    for dynamo in (False, True):
        path = d / f"det-{'dynamo' if dynamo else 'torchscript'}.onnx"
        kw = {"dynamic_axes": {"x": {0: "n"}, "out": {0: "n"}}} if not dynamo else {
            "dynamic_shapes": {"x": {0: torch.export.Dim("n", min=1, max=64)}}}
        torch.onnx.export(net, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["x"],
                          output_names=["out"], opset_version=18, dynamo=dynamo, **kw)
        out[dynamo] = ov.load(path, preprocess="unit")
    return net, out


@pytest.fixture(scope="module")
def photo():
    from models.scenes import make_scenes

    return make_scenes(1, seed=21).images[0]


def test_both_exports_are_detectors_that_compute_torchs_head(exports, photo):
    net, models = exports
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = net(x).numpy()
    for dynamo, m in models.items():
        assert (m.task, m.layout, m.num_classes) == ("detect", "yolov8", 3), dynamo
        raw = m.run(m.normalize(m.to_pixels(photo)), [m.score_output])[m.score_output]
        np.testing.assert_allclose(raw, want, rtol=1e-4, atol=1e-4, err_msg=str(dynamo))
    a, b = (models[k].predict(photo, score_threshold=0.05) for k in (False, True))
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    assert a.class_id.tolist() == b.class_id.tolist()


def test_each_box_gradient_is_torchs_gradient_of_its_class_logit(exports, photo):
    """Saliency's raw map is the input gradient of the box's class logit (the Sigmoid read as the
    identity): torch's gradient of the pre-sigmoid class output, float64 at batch 2."""
    net, models = exports
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].double() / 255
    twin = net.double()
    for dynamo, m in models.items():
        found = ov.explain(m, photo, "saliency", score_threshold=0.05, max_detections=3)
        assert found
        for e in found:
            a, c = e.extras["anchor"], e.target
            xx = x.repeat(2, 1, 1, 1).requires_grad_(True)
            raws = twin.raw(xx)
            n8 = raws[0].shape[2]
            logit = raws[0][:, 4 + c, a] if a < n8 else raws[1][:, 4 + c, a - n8]
            (g,) = torch.autograd.grad(logit.sum(), xx)
            want = g[0].permute(1, 2, 0).numpy()
            got = np.asarray(e.raw, np.float64)
            got = got if got.shape == want.shape else np.moveaxis(got, 0, -1)
            scale = np.abs(want).max()
            assert np.abs(got - want).max() <= 1e-4 * scale, (dynamo, a, c)
    net.float()
