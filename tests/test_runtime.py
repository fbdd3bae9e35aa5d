"""Sessions (cache, options, providers) and batched execution with bounded chunks."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxviz import OptionError, runtime


def _affine(batch="N", with_scale_input=False):
    """y = x * 2 + 1 (+ a per-call 'scale' input without batch axis)."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])]
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [helper.make_node("Mul", ["x", "two"], ["m"]),
             helper.make_node("Add", ["m", "one"], ["y"])]
    if with_scale_input:
        inputs.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, []))
        nodes.append(helper.make_node("Mul", ["y", "scale"], ["z"]))
    out = "z" if with_scale_input else "y"
    g = helper.make_graph(nodes, "affine", inputs,
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, 3]),
                           helper.make_tensor_value_info("m", TensorProto.FLOAT, [batch, 3])],
                          [two, one])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_session_cache_and_keys():
    model = _affine()
    s1 = runtime.session(model)
    assert runtime.session(model.SerializeToString()) is s1
    assert runtime.session(model, threads=1) is not s1
    assert runtime.session(_affine(batch="B")) is not s1
    assert s1.get_providers()[-1] == "CPUExecutionProvider"
    with pytest.raises(OptionError, match="threads"):
        runtime.session(_affine(batch="T"), threads=0)


def test_providers_default():
    import onnxruntime as ort

    want = "CUDAExecutionProvider" in ort.get_available_providers()
    assert ("CUDAExecutionProvider" in runtime.default_providers()) == want
    assert runtime.default_providers()[-1] == "CPUExecutionProvider"


def test_session_options():
    opts = runtime._options(2)
    import onnxruntime as ort

    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"


class CountingSession:
    """Wraps a session and records the batch size of every run."""

    def __init__(self, sess):
        self.sess, self.sizes = sess, []

    def get_inputs(self):
        return self.sess.get_inputs()

    def run(self, outputs, feeds):
        self.sizes.append(len(feeds["x"]))
        return self.sess.run(outputs, feeds)


@pytest.mark.parametrize("n, batch_size, sizes",
                         [(10, 4, [4, 4, 2]), (3, 32, [3]), (5, 1, [1] * 5)])
def test_run_batched_chunks(n, batch_size, sizes):
    sess = CountingSession(runtime.session(_affine()))
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y, m = runtime.run_batched(sess, {"x": x}, ["y", "m"], batch_size)
    np.testing.assert_array_equal(y, x * 2 + 1)
    np.testing.assert_array_equal(m, x * 2)
    assert sess.sizes == sizes


def test_fixed_batch_feeds_one_at_a_time():
    sess = CountingSession(runtime.session(_affine(batch=1)))
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    (y,) = runtime.run_batched(sess, {"x": x}, ["y"], batch_size=8, fixed_batch=True)
    np.testing.assert_allclose(y, x * 2 + 1, rtol=1e-6)
    assert sess.sizes == [1, 1, 1]


def test_inputs_without_batch_axis_are_passed_whole():
    sess = runtime.session(_affine(with_scale_input=True))
    x = np.ones((5, 3), np.float32)
    (z,) = runtime.run_batched(sess, {"x": x, "scale": np.float32(3.0)}, ["z"], batch_size=2)
    np.testing.assert_array_equal(z, np.full((5, 3), 9.0, np.float32))


def test_run_batched_errors():
    sess = runtime.session(_affine(with_scale_input=True))
    with pytest.raises(OptionError, match="batch_size"):
        runtime.run_batched(sess, {"x": np.ones((2, 3), np.float32)}, None, batch_size=0)
    with pytest.raises(OptionError, match="empty batch"):
        runtime.run_batched(sess, {"x": np.ones((0, 3), np.float32), "scale": np.float32(1)},
                            None)
    assert onnx.checker.check_model(_affine()) is None
