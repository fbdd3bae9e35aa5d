"""The loader's normalization steps, one by one, on crafted graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxviz as ov
from onnxviz.model import loading


def test_initializer_inputs_removed(make_cnn):
    proto = make_cnn()
    proto.ir_version = 3
    for init in proto.graph.initializer:  # IR 3 style: every weight is also an input
        proto.graph.input.append(onnx.helper.make_tensor_value_info(
            init.name, init.data_type, list(init.dims)))
    m = ov.load(proto, preprocess="unit")
    assert any("removed 4 initializers" in n for n in m.notes)
    assert [i.name for i in m.proto.graph.input] == ["x"] and m.proto.ir_version >= 4
    assert loading.remove_initializer_inputs(proto) == 4 and len(proto.graph.input) == 1


def test_old_opset_upgraded_without_changing_results(make_cnn):
    old = make_cnn(opset=9, softmax=True)
    m = ov.load(old, preprocess="unit")
    assert m.opset == loading.MIN_OPSET and any("upgraded opset 9" in n for n in m.notes)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    import onnxruntime as ort

    want = ort.InferenceSession(old.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(["prob"], {"x": x})[0]
    np.testing.assert_allclose(m.run(x, ["prob"])["prob"], want, rtol=1e-6, atol=1e-7)


def test_upgrade_kept_only_when_outputs_match(make_cnn):
    old = make_cnn(opset=9)
    calls = []

    def lying_runner(proto):
        calls.append(loading.default_opset(proto))
        value = 1.0 if loading.default_opset(proto) == 9 else 1.1
        return [np.full((1, 4), value, np.float32)]

    kept, upgraded = loading.upgrade_opset(old, lying_runner)
    assert not upgraded and kept is old and calls == [9, loading.MIN_OPSET]
    same, upgraded = loading.upgrade_opset(old, lambda p: [np.ones((1, 4), np.float32)])
    assert upgraded and loading.default_opset(same) == loading.MIN_OPSET
    failing, upgraded = loading.upgrade_opset(old, lambda p: None)
    assert not upgraded and failing is old


def test_recent_opset_left_alone(make_cnn):
    proto = make_cnn(opset=17)
    out, upgraded = loading.upgrade_opset(proto, lambda p: pytest.fail("must not run"))
    assert out is proto and not upgraded


def test_shapes_are_inferred(make_cnn):
    m = ov.load(make_cnn(batch=1), preprocess="unit")
    assert m.shape_of("r") == ("N", 6, 8, 8) and m.shape_of("logits") == ("N", 4)
