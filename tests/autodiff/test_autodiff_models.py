"""Gradients of real third-party ONNX files against finite differences, and batch invariance.

Third-party fixtures (MATLAB, tf2onnx, old PyTorch exporters): ``Model.grad`` (float32, ONNX
Runtime) is checked against central differences of the score computed in float64 with ONNX's
reference evaluator (ORT has no float64 Conv), eps 1e-6: along the gradient's own direction
(relative error <= 1e-4), along random unit directions and along the coordinates of the largest
gradient entries (error <= 1e-4 * ||grad||).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import skimage.data
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import onnxviz as ov
from onnxviz.autodiff import gradient_model, reachable

from _autodiff_helpers import session

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "third_party"
ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p.name for p in FIXTURES.glob("*.onnx"))


def to_float64(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` computing in float64 (initializers, Constant values, declared types)."""
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    g = p.graph
    for t in g.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
    for v in [*g.input, *g.output, *g.value_info]:
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
            v.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    for n in g.node:
        for a in n.attribute:
            if a.name == "value" and a.t.data_type == onnx.TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64)))
    return p


@pytest.mark.parametrize("name", FILES)
def test_third_party_gradient_matches_finite_differences(name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ov.load(FIXTURES / name)
    # random float pixels: a photo's uint8 plateaus would make MaxPool ties (kinks) on purpose
    flat = m.input.flat_size
    size = (1, flat[0] * flat[1]) if flat else m.input.size
    pixels = np.random.default_rng(0).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    x = m.normalize(pixels)
    target = int(np.argmax(m.forward(x)[0]))
    g = m.grad(x, target).astype(np.float64)[0]
    assert g.shape == x.shape[1:] and np.isfinite(g).all()

    ref = ReferenceEvaluator(to_float64(m.proto))
    x64 = x.astype(np.float64)

    def score(xp):
        out = ref.run([m.score_output], {m.input.name: xp})[0]
        return float(out.reshape(-1)[target])

    def directional(v, eps=1e-6):
        return (score(x64 + eps * v[None]) - score(x64 - eps * v[None])) / (2 * eps)

    norm = np.linalg.norm(g)
    assert norm > 0
    along = directional(g / norm)
    assert abs(along - norm) <= 1e-4 * norm, f"along grad: fd {along} vs |g| {norm}"
    rng = np.random.default_rng(0)
    dirs = [rng.standard_normal(g.shape) for _ in range(2)]
    for idx in np.argsort(-np.abs(g).ravel())[:3]:
        e = np.zeros(g.size)
        e[idx] = 1.0
        dirs.append(e.reshape(g.shape))
    for v in dirs:
        v = v / np.linalg.norm(v)
        fd, an = directional(v), float(np.sum(g * v))
        assert abs(fd - an) <= 1e-4 * norm, f"fd {fd} vs analytic {an} (|g| {norm})"


def test_batch_of_four_equals_one_at_a_time():
    """Per-image seeds (different targets) in one batch give each image's own gradient."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ov.load(ROOT / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx")
    imgs = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    x = m.preprocess(imgs)
    targets = [281, 967, 5, 812]
    layer = [n.output[0] for n in m.proto.graph.node if n.op_type == "Clip"][-1]
    seed = np.zeros((4, m.num_classes), np.float32)
    seed[np.arange(4), targets] = 1
    batch, _, scores = m.gradients(x, seed, [m.input.name, layer])
    for i in range(4):
        one, _, s1 = m.gradients(x[i:i + 1], seed[i:i + 1], [m.input.name, layer])
        for w in (m.input.name, layer):
            scale = np.abs(one[w]).max()
            np.testing.assert_allclose(batch[w][i:i + 1], one[w], rtol=0, atol=1e-5 * scale)
        np.testing.assert_allclose(scores[i:i + 1], s1, rtol=0, atol=1e-4)
    single = m.grad(x[1:2], 967)
    np.testing.assert_allclose(single, batch[m.input.name][1:2], rtol=0,
                               atol=1e-5 * np.abs(single).max())


def test_unsupported_op_names_op_node_and_supported():
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Cos", ["r"], ["c"], name="my_cos"),
             helper.make_node("Add", ["c", "r"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ov.UnsupportedOpError) as err:
        gradient_model(model, "y", ["x"])
    assert err.value.op_type == "Cos" and err.value.node == "my_cos"
    assert "Conv" in err.value.supported and "Relu" in err.value.supported
    flows = reachable(model, "y")
    assert flows["c"] is True and flows["r"] is False and flows["x"] is False
    # differentiating wrt the tensor after the unsupported op works
    g = gradient_model(model, "y", ["c"])
    out = session(g.model).run([g.grads["c"]], {"x": np.ones(2, np.float32), g.seed: np.full(2, 3, np.float32)})
    np.testing.assert_array_equal(out[0], [3, 3])


def test_shape_subgraph_is_constant_and_only_path_is_differentiated():
    """A Reshape whose target shape comes from Shape/Gather/Concat of the input is differentiated
    through its data input only; an unrelated branch with an unsupported op is left alone."""
    from onnx import TensorProto, helper

    i64 = lambda name, v: numpy_helper.from_array(np.asarray(v, np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
        helper.make_node("Cos", ["x"], ["unused"]),  # no rule, but not on the path to y
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("unused", TensorProto.FLOAT, None)],
        initializer=[i64("zero", 0), i64("zero1", [0]), i64("minus1", [-1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    g = gradient_model(model, "y", ["x"])
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 2, 3) + 0.05
    seed = np.arange(12, dtype=np.float32).reshape(2, 6)
    out = session(g.model).run([g.grads["x"]], {"x": x, g.seed: seed})[0]
    np.testing.assert_array_equal(out, (seed.reshape(x.shape) * (x > 0)))


def test_zero_pad_folded_into_conv_keeps_outputs_and_gradients():
    """TF-style "same" padding (Pad + strided depthwise Conv) is folded into the Conv: forward
    outputs are unchanged and the input gradient matches central differences."""
    from onnx import TensorProto, helper

    from _autodiff_helpers import finite_diff

    w = np.random.default_rng(0).standard_normal((3, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
             helper.make_node("Conv", ["p", "w"], ["y"], group=3, strides=[2, 2], kernel_shape=[3, 3])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "pads"),
                     numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    gm = gradient_model(model, "y", ["x"])
    assert "Pad" not in {n.op_type for n in gm.model.graph.node}
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    plain = session(model)
    y = plain.run(["y"], {"x": x})[0]
    seed = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    y2, dx = session(gm.model).run(["y", gm.grads["x"]], {"x": x, gm.seed: seed})
    np.testing.assert_array_equal(y2, y)
    fd = finite_diff(plain, "y", {"x": x}, "x", seed, 1e-2)  # linear: exact up to rounding
    np.testing.assert_allclose(dx, fd, rtol=0, atol=2e-3 * np.abs(fd).max())
