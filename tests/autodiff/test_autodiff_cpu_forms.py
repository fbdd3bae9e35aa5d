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


GELU_CHAINS = {  # the three orders exporters write 0.5 * x * (1 + erf(x / sqrt(2))) in
    "x_times_then_half": ["d = Div(x, sqrt2)", "e = Erf(d)", "a = Add(e, one)", "m = Mul(x, a)",
                          "y = Mul(m, half)"],
    "half_then_x": ["d = Mul(x, rsqrt2)", "e = Erf(d)", "a = Add(one, e)", "m = Mul(a, half)",
                    "y = Mul(x, m)"],
    "half_x_first": ["h = Mul(x, half)", "d = Div(x, sqrt2)", "e = Erf(d)", "a = Add(e, one)",
                     "y = Mul(h, a)"],
}


def _gelu_model(body: list[str], opset: int):
    """z = W @ gelu(x) + x: the chain between a MatMul and a residual Add, as in a transformer MLP."""
    import onnx.parser

    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 6)).astype(np.float32) * 0.5
    text = f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g (float[N, 6] x) => (float[N, 6] z) {{
        sqrt2 = Constant <value = float {{{float(np.sqrt(2))!r}}}> ()
        rsqrt2 = Constant <value = float {{{float(1 / np.sqrt(2))!r}}}> ()
        one = Constant <value = float {{1.0}}> ()
        half = Constant <value = float {{0.5}}> ()
        {chr(10).join(body)}
        p = MatMul(y, w)
        z = Add(p, x)
    }}"""
    m = onnx.parser.parse_model(text)
    m.graph.initializer.append(numpy_helper.from_array(w, "w"))
    return m, w


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("chain", list(GELU_CHAINS))
def test_gelu_chain_fused_matches_torch(chain, opset):
    model, w = _gelu_model(GELU_CHAINS[chain], opset)
    gm = gradient_model(model, of="z", wrt=["x"], cpu=True)
    ops = [(n.domain, n.op_type) for n in gm.model.graph.node]
    assert ("" if opset >= 20 else "com.microsoft", "Gelu") in ops
    assert ops.count(("", "Erf")) == 1 and ops.count(("", "Div")) == 1  # the backward's only
    plain = gradient_model(model, of="z", wrt=["x"])  # portable graph: fused only from opset 20
    assert (("", "Gelu") in [(n.domain, n.op_type) for n in plain.model.graph.node]) == (opset >= 20)

    rng = np.random.default_rng(5)
    x = rng.uniform(-4, 4, (3, 6)).astype(np.float32)
    seed = rng.standard_normal((3, 6)).astype(np.float32)
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    zt = F.gelu(xt) @ torch.from_numpy(w.astype(np.float64)) + xt
    (zt * torch.from_numpy(seed.astype(np.float64))).sum().backward()
    ref = xt.grad.numpy()
    for g in (gm, plain):
        sess = session(g.model)
        dx, z = sess.run([g.grads["x"], "z"], {"x": x, g.seed: seed})
        np.testing.assert_allclose(z, zt.detach().numpy(), rtol=0, atol=1e-5 * np.abs(z).max())
        np.testing.assert_allclose(dx, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
        one = sess.run([g.grads["x"]], {"x": x[2:], g.seed: seed[2:]})[0]  # batch size changes nothing
        np.testing.assert_allclose(one, dx[2:], rtol=0, atol=1e-6 * np.abs(ref).max())


def test_gelu_chain_kept_when_an_intermediate_is_read():
    model, _ = _gelu_model(GELU_CHAINS["x_times_then_half"], 17)
    gm = gradient_model(model, of="z", wrt=["x"], expose=["e"], cpu=True)
    assert "Gelu" not in {n.op_type for n in gm.model.graph.node}
    gm = gradient_model(model, of="z", wrt=["x"], cpu=True, rules="guided_backprop")
    assert "Gelu" not in {n.op_type for n in gm.model.graph.node}
