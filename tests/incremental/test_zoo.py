"""Incremental occlusion on CNNs of the architecture zoo as users export them (timm, TorchScript
exporter, random weights, 64 px inputs): the map equals full recomputation at every position.

Each architecture exercises what the inline nets cannot: torch's shared-weight Identity nodes,
ResNet's residual stages and max pooling, RegNet's grouped convs, MobileNet's depthwise convs,
Hard-Swish and squeeze-excitation (a global branch: the cut), EfficientNet's SiLU as
``x * Sigmoid(x)``, DenseNet's Concat of every earlier feature map.
"""

from __future__ import annotations

import pytest

import onnxviz as ov

from tests.zoo.timm_shim import import_timm
from .test_exact import check_exact, photo

torch = pytest.importorskip("torch")

#: (timm name, create_model kwargs, the op the plan must have run on crops)
ARCHS = [
    ("resnet18", {}, "Add"),
    ("regnetx_002", {}, "Conv"),
    ("mobilenetv3_small_050", {}, "HardSwish"),
    ("efficientnet_b0", {}, "Mul"),
    ("densenet121", {}, "Concat"),
]


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("incremental_zoo")


def export(name, kwargs, folder):
    timm = import_timm()
    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
    path = folder / f"{name}.onnx"
    torch.onnx.export(net, torch.randn(1, 3, 64, 64), str(path), opset_version=17,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    return path


@pytest.mark.parametrize("name,kwargs,op", ARCHS, ids=[a[0] for a in ARCHS])
def test_timm_cnns(name, kwargs, op, zoo_dir):
    model = ov.load(export(name, kwargs, zoo_dir), preprocess="imagenet", threads=2)
    info = check_exact(model, photo((64, 64), 8), patch=12, stride=13, fill="gray",
                       batch_size=9)  # 5 x 5 positions, the last row and column cut at 64
    from onnxviz.incremental import plan_for
    from onnxviz.perturb import patch_grid

    rects, _ = patch_grid((64, 64), 12, 13)
    plan = plan_for(model, rects, 1.0)
    ops = {model.proto.graph.node[s.index].op_type for s in plan.steps}
    assert op in ops, (info, ops)
