"""``gradient_model(cpu=True)``: strided depthwise Conv input gradients through MaxUnpool zero
insertion + a stride-1 Conv, checked against torch.autograd on the same convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from onnxviz.autodiff import gradient_model

from _autodiff_helpers import make_model, session

CASES = [  # channels, (H, W), kernel, strides, pads [top, left, bottom, right]
    (4, (8, 8), 3, (2, 2), [0, 0, 1, 1]),  # TF "same", even size (EfficientNet-Lite)
    (3, (10, 10), 5, (2, 2), [1, 1, 2, 2]),
    (2, (7, 9), 3, (2, 2), [1, 1, 1, 1]),  # odd sizes: the last row/column gets no gradient term
    (2, (9, 8), 3, (3, 2), [1, 0, 1, 1]),  # unequal strides, asymmetric pads
    (2, (6, 6), 2, (2, 2), [0, 0, 0, 0]),  # non-overlapping windows
]


def _model(c, hw, k, strides, pads, w):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, *hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], group=c, kernel_shape=[k, k],
                            strides=list(strides), pads=pads)
    return make_model([conv], [x], [y], [numpy_helper.from_array(w, "w")])


@pytest.mark.parametrize("case", CASES, ids=[f"c{c[0]}_{c[1][0]}x{c[1][1]}_k{c[2]}_s{c[3][0]}{c[3][1]}"
                                             for c in CASES])
def test_strided_depthwise_cpu_form_matches_torch(case):
    c, hw, k, strides, pads = case
    rng = np.random.default_rng(7)
    w = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    x = rng.standard_normal((3, c, *hw)).astype(np.float32)  # batch 3: runtime MaxUnpool indices
    gm = gradient_model(_model(c, hw, k, strides, pads, w), of="y", wrt=["x"], cpu=True)
    assert "MaxUnpool" in {n.op_type for n in gm.model.graph.node}
    plain = gradient_model(_model(c, hw, k, strides, pads, w), of="y", wrt=["x"])
    assert "MaxUnpool" not in {n.op_type for n in plain.model.graph.node}

    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    yt = F.conv2d(F.pad(xt, (pads[1], pads[3], pads[0], pads[2])), torch.from_numpy(w.astype(np.float64)),
                  stride=strides, groups=c)
    seed = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    (yt * torch.from_numpy(seed.astype(np.float64))).sum().backward()
    ref = xt.grad.numpy()

    for g in (gm, plain):
        dx = session(g.model).run([g.grads["x"]], {"x": x, g.seed: seed})[0]
        np.testing.assert_allclose(dx, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    one = session(gm.model).run([gm.grads["x"]], {"x": x[1:2], gm.seed: seed[1:2]})[0]
    np.testing.assert_allclose(one[0], ref[1], rtol=0, atol=1e-5 * np.abs(ref).max())
