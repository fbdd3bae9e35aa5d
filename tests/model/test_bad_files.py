"""Every way a model file can be bad gives an OnnxvizError with a plain message."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

import onnxviz as ov
from onnxviz import ModelError, UnsupportedOpError


@pytest.fixture
def good_bytes(make_cnn):
    return make_cnn().SerializeToString()


def test_missing(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        ov.load(tmp_path / "nope.onnx")


def test_folder(tmp_path):
    with pytest.raises(ModelError, match="folder"):
        ov.load(tmp_path)


def test_empty(tmp_path):
    (tmp_path / "e.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        ov.load(tmp_path / "e.onnx")
    with pytest.raises(ModelError, match="empty"):
        ov.load(b"")


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9])
def test_truncated(tmp_path, good_bytes, fraction):
    (tmp_path / "t.onnx").write_bytes(good_bytes[: int(len(good_bytes) * fraction)])
    with pytest.raises(ModelError, match="truncated|not an ONNX|not valid"):
        ov.load(tmp_path / "t.onnx")


def test_truncated_real_file(tmp_path, fixtures_dir):
    data = (fixtures_dir / "pytorch_mnist_convnet_maxpool.onnx").read_bytes()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelError):
        ov.load(tmp_path / "t.onnx")


@pytest.mark.parametrize("content", [b"hello, I am a text file\n" * 20,
                                     b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
                                     b"{\"json\": true}"])
def test_not_onnx(tmp_path, content):
    (tmp_path / "x.onnx").write_bytes(content)
    with pytest.raises(ModelError, match="not (a valid )?(an )?ONNX"):
        ov.load(tmp_path / "x.onnx")


def test_wrong_type():
    with pytest.raises(ModelError, match="path, bytes"):
        ov.load(12345)


def test_invalid_graph(make_cnn):
    proto = make_cnn()
    proto.graph.node[0].input[1] = "no_such_weight"
    with pytest.raises(ModelError, match="not valid ONNX"):
        ov.load(proto)


def _with_op(op, domain="", dtype=TensorProto.FLOAT):
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=dtype, name="cast_in"),
             helper.make_node(op, ["c"], ["d"], name="the_odd_one", domain=domain),
             helper.make_node("Cast", ["d"], ["y"], to=TensorProto.FLOAT, name="cast_out")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def test_unknown_custom_op_names_op_and_node():
    with pytest.raises(UnsupportedOpError, match="'FooBar' at node 'the_odd_one'") as e:
        ov.load(_with_op("FooBar", domain="com.example"), preprocess="unit")
    assert e.value.op_type == "FooBar" and e.value.node == "the_odd_one"


def test_op_without_kernel_names_op_and_node():
    # Acosh on doubles is valid ONNX but ONNX Runtime's CPU build has no kernel for it
    with pytest.raises(UnsupportedOpError, match="'Acosh' at node 'the_odd_one'"):
        ov.load(_with_op("Acosh", dtype=TensorProto.DOUBLE), preprocess="unit")


# ---- external data ------------------------------------------------------------------------

def _external_model(folder, location):
    """The tiny CNN with tensor 'w' stored in ``location`` (relative to ``folder``)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    tensor = numpy_helper.from_array(w, "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
         helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
         helper.make_node("Flatten", ["p"], ["y"], name="flat")],
        "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "weights.bin").write_bytes(w.tobytes())
    t = model.graph.initializer[0]
    external_data_helper.set_external_data(t, location=location, offset=0, length=w.nbytes)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path, w


def test_external_data_inside_folder_loads(tmp_path):
    path, w = _external_model(tmp_path, "weights.bin")
    m = ov.load(path, preprocess="unit")
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    import onnxruntime as ort

    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(m.forward(x), want[0], rtol=1e-6)


@pytest.mark.parametrize("where", ["absolute", "dotdot", "nested_dotdot"])
def test_external_data_outside_folder_refused(tmp_path, where):
    inner = tmp_path / "models"
    inner.mkdir()
    secret = tmp_path / "weights.bin"
    location = {"absolute": str(secret), "dotdot": "../weights.bin",
                "nested_dotdot": "sub/../../weights.bin"}[where]
    path, _ = _external_model(inner, location)
    (tmp_path / "weights.bin").write_bytes((inner / "weights.bin").read_bytes())
    with pytest.raises(ModelError, match="refusing external data location"):
        ov.load(path)


def test_external_data_missing_file(tmp_path):
    path, _ = _external_model(tmp_path, "other.bin")
    with pytest.raises(ModelError, match="missing"):
        ov.load(path)


def test_external_data_from_bytes_refused(tmp_path):
    path, _ = _external_model(tmp_path, "weights.bin")
    with pytest.raises(ModelError, match="from its path"):
        ov.load(path.read_bytes())


def test_external_symlink_escaping_folder_refused(tmp_path):
    inner = tmp_path / "models"
    inner.mkdir()
    path, _ = _external_model(inner, "link.bin")
    (tmp_path / "elsewhere.bin").write_bytes((inner / "weights.bin").read_bytes())
    (inner / "link.bin").symlink_to(tmp_path / "elsewhere.bin")
    with pytest.raises(ModelError, match="outside the model's folder"):
        ov.load(path)
    assert onnx.load(str(path), load_external_data=False)  # the file itself is fine
