"""Crafted hostile inputs for the hardening tests: tiny models that declare huge inputs, loop
forever, produce NaN, mix the batch, or end in outputs that are not scores; bomb images."""

from __future__ import annotations

import os
import zlib
import struct

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh


def _model(nodes, outputs, inits=(), shape=("N", 3, 16, 16), opsets=(("", 17),)):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, list(shape))],
                     outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = 8
    return m


def _linear(shape=("N", 3, 16, 16), classes=4, seed=0):
    n = int(np.prod([d for d in shape[1:]]))
    w = nh.from_array((np.random.default_rng(seed).standard_normal((n, classes))
                       / np.sqrt(n)).astype(np.float32), "W")
    return [h.make_node("Flatten", ["x"], ["f"]), h.make_node("MatMul", ["f", "W"], ["y"])], w


def tiny():
    nodes, w = _linear()
    return _model(nodes, [h.make_tensor_value_info("y", T.FLOAT, ["N", 4])], [w])


def gray():
    """A 1-channel CNN (conv, relu, pool, dense) like the MNIST fixtures."""
    rng = np.random.default_rng(1)
    k = nh.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "k")
    w = nh.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W")
    nodes = [h.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"]),
             h.make_node("GlobalAveragePool", ["r"], ["p"]),
             h.make_node("Flatten", ["p"], ["f"]), h.make_node("MatMul", ["f", "W"], ["y"])]
    return _model(nodes, [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])], [k, w],
                  shape=("N", 1, 16, 16))


def big_input(side=20000):
    nodes = [h.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)]
    return _model(nodes, [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])],
                  shape=("N", 3, side, side))


def nan_out():
    nodes, w = _linear()
    nodes.append(h.make_node("Sqrt", ["y"], ["s"]))  # negative scores -> NaN
    neg = nh.from_array(-np.abs(nh.to_array(w)) - 0.01, "W")
    return _model(nodes, [h.make_tensor_value_info("s", T.FLOAT, ["N", 4])], [neg])


def batch_mixer():
    """Scores averaged over the batch: one row out whatever comes in."""
    nodes, w = _linear()
    nodes.append(h.make_node("ReduceMean", ["y"], ["m"], axes=[0], keepdims=1))
    return _model(nodes, [h.make_tensor_value_info("m", T.FLOAT, [1, 4])], [w])


def endless_loop():
    """A Loop with 2**62 iterations after a reduction: loading would never end."""
    body = h.make_graph(
        [h.make_node("Identity", ["cond_in"], ["cond_out"]),
         h.make_node("Add", ["v_in", "one"], ["v_out"])], "body",
        [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("v_in", T.FLOAT, ["N", 3])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []),
         h.make_tensor_value_info("v_out", T.FLOAT, ["N", 3])],
        [h.make_tensor("one", T.FLOAT, [], [1.0])])
    nodes = [h.make_node("ReduceMean", ["x"], ["r"], axes=[2, 3], keepdims=0),
             h.make_node("Loop", ["M", "c", "r"], ["y"], body=body)]
    return _model(nodes, [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])],
                  [h.make_tensor("M", T.INT64, [], [2**62]), h.make_tensor("c", T.BOOL, [], [True])])


def slow_loop():
    """A Loop whose body computes its condition (``i < 2**62``): nothing in its constants says
    how long it runs, so only the probe time limit stops it."""
    body = h.make_graph(
        [h.make_node("Less", ["i", "limit"], ["cond_out"]),
         h.make_node("Add", ["v_in", "one"], ["v_out"])], "body",
        [h.make_tensor_value_info("i", T.INT64, []),
         h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("v_in", T.FLOAT, ["N", 3])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []),
         h.make_tensor_value_info("v_out", T.FLOAT, ["N", 3])],
        [h.make_tensor("one", T.FLOAT, [], [1.0]), h.make_tensor("limit", T.INT64, [], [2**62])])
    nodes = [h.make_node("ReduceMean", ["x"], ["r"], axes=[2, 3], keepdims=0),
             h.make_node("Loop", ["", "c", "r"], ["y"], body=body)]
    return _model(nodes, [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])],
                  [h.make_tensor("c", T.BOOL, [], [True])])


def big_conv(side=8000, channels=8, batch=1, stride=1, head="pool"):
    """A 1 KB model that declares a fixed ``batch x 3 x side x side`` input: one 3x3 Conv, then
    GlobalAveragePool (``head="pool"``: any input size gives ``channels`` scores) or Flatten
    (``head="flatten"``: the scores' count follows the input size)."""
    k = nh.from_array(np.random.default_rng(2).standard_normal((channels, 3, 3, 3))
                      .astype(np.float32), "k")
    nodes = [h.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1], strides=[stride, stride])]
    if head == "pool":
        nodes += [h.make_node("GlobalAveragePool", ["c"], ["p"]),
                  h.make_node("Flatten", ["p"], ["y"])]
        classes = channels
    else:
        nodes.append(h.make_node("Flatten", ["c"], ["y"]))
        classes = channels * (-(-side // stride)) ** 2
    return _model(nodes, [h.make_tensor_value_info("y", T.FLOAT, [batch, classes])], [k],
                  shape=(batch, 3, side, side))


def scalar_out():
    nodes, w = _linear()
    nodes.append(h.make_node("ReduceSum", ["y"], ["s"], keepdims=0))
    return _model(nodes, [h.make_tensor_value_info("s", T.FLOAT, [])], [w])


def string_out():
    nodes, w = _linear()
    nodes.append(h.make_node("Cast", ["y"], ["s"], to=T.STRING))
    return _model(nodes, [h.make_tensor_value_info("s", T.STRING, ["N", 4])], [w])


def zipmap_out():
    nodes, w = _linear()
    nodes.append(h.make_node("ZipMap", ["y"], ["z"], domain="ai.onnx.ml",
                             classlabels_int64s=[0, 1, 2, 3]))
    seq = h.make_sequence_type_proto(h.make_map_type_proto(T.INT64, h.make_tensor_type_proto(
        T.FLOAT, [])))
    return _model(nodes, [h.make_value_info("z", seq)], [w],
                  opsets=(("", 17), ("ai.onnx.ml", 3)))


def with_external(folder, location: str, dims=(768, 4)):
    """A model whose weight claims external data at ``location``."""
    nodes, w = _linear()
    t = onnx.TensorProto(name="W", data_type=T.FLOAT, dims=list(dims))
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(4 * int(np.prod(dims))))):
        e = t.external_data.add()
        e.key, e.value = k, v
    m = _model(nodes, [h.make_tensor_value_info("y", T.FLOAT, ["N", 4])], [t])
    path = os.path.join(folder, "ext.onnx")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return path


def png_header_only(width: int, height: int, bit_depth: int = 8, color: int = 0) -> bytes:
    """A small PNG that declares ``width`` x ``height`` pixels (a decompression bomb's header,
    followed by a tiny compressed stream of zero rows)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def save(m: onnx.ModelProto, path) -> str:
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return str(path)
