"""Gradients of int8 and float16 files against independent references: a torch fake-quantized twin
(STE), the float model on dequantized weights (surrogate), the float32 model (float16)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxviz as ov


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def torch_twin(proto, x, target):
    """d logit[target] / d input of a QDQ graph run in torch, QuantizeLinear->DequantizeLinear as
    ``torch.fake_quantize_per_tensor_affine`` (weights dequantized once), float64, batch >= 2."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    qparams = {}
    env = {proto.graph.input[0].name: torch.tensor(x, dtype=torch.float64, requires_grad=True)}
    for n in proto.graph.node:
        a, ins = _attrs(n), list(n.input)
        if n.op_type == "QuantizeLinear":
            s, z = consts[ins[1]], consts[ins[2]]
            info = np.iinfo(z.dtype)
            qparams[n.output[0]] = (env[ins[0]], float(s), int(z), info.min, info.max)
            continue
        if n.op_type == "DequantizeLinear":
            if ins[0] in consts:
                q, s = consts[ins[0]].astype(np.float64), consts[ins[1]].astype(np.float64)
                z = consts[ins[2]].astype(np.float64) if len(ins) > 2 else 0.0
                if s.size > 1 and q.ndim > 1:
                    shape = [1] * q.ndim
                    shape[a.get("axis", 1)] = -1
                    s, z = s.reshape(shape), np.reshape(z, shape)
                env[n.output[0]] = torch.tensor((q - z) * s)
            else:
                v, s, z, lo, hi = qparams[ins[0]]
                env[n.output[0]] = torch.fake_quantize_per_tensor_affine(v, s, z, lo, hi)
            continue
        v = [env.get(i, torch.tensor(consts[i]) if i in consts else None) for i in ins]
        op = n.op_type
        if op == "Conv":
            p = a.get("pads", [0, 0, 0, 0])
            y = F.conv2d(F.pad(v[0], (p[1], p[3], p[0], p[2])), v[1],
                         v[2] if len(v) > 2 else None, stride=a.get("strides", [1, 1]),
                         dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        elif op == "Relu":
            y = F.relu(v[0])
        elif op == "LeakyRelu":
            y = F.leaky_relu(v[0], a.get("alpha", 0.01))
        elif op == "MaxPool":
            p = a.get("pads", [0, 0, 0, 0])
            y = F.max_pool2d(F.pad(v[0], (p[1], p[3], p[0], p[2]), value=-np.inf),
                             a["kernel_shape"], a.get("strides", a["kernel_shape"]))
        elif op == "Add":
            y = v[0] + v[1]
        elif op == "GlobalAveragePool":
            y = v[0].mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = v[0].flatten(1)
        elif op == "Gemm":
            w = v[1].T if a.get("transB", 0) else v[1]
            y = v[0] @ w + (v[2] if len(v) > 2 else 0)
        else:
            raise NotImplementedError(op)
        env[n.output[0]] = y
    out = env[proto.graph.output[0].name]
    out[:, target].sum().backward()
    return env[proto.graph.input[0].name].grad.numpy()


def _x(name, files, shapes_data, photos):
    m = ov.load(files(name)["float32"], threads=2)
    return m.preprocess(list(shapes_data[0][:4]) if name == "shapes" else list(photos))


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name", ["shapes", "resnet"])
def test_qdq_ste_equals_torch_fake_quantized_twin(files, name, shapes_data, photos):
    m = ov.load(files(name)["qdq"], threads=2, gradients="ste")
    x = _x(name, files, shapes_data, photos)
    g = m.grad(x, 0)
    want = torch_twin(m.proto, x.astype(np.float64), 0)
    assert np.abs(want).max() > 0 and np.abs(g).max() > 0.01 * np.abs(want).max()
    assert np.abs(g - want).max() <= 1e-4 * np.abs(want).max(), _rel(g, want)


def _dequantized_float(float_path, src):
    """The float model with each Conv/Gemm/MatMul weight and bias replaced by its dequantized
    counterpart in the surrogate graph ``src``: the surrogate tensor of the same shape (or its
    transpose, for a Gemm stored as MatMul) nearest to the float one. Pairing by node order is
    not enough: onnxruntime's quantization pre-processing may reorder the nodes."""
    proto = onnx.load(str(float_path))

    def weights(p):
        names = {t.name for t in p.graph.initializer}
        return [i for n in p.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
                for i in n.input[1:] if i in names]

    theirs = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in src.graph.initializer
              if t.name in set(weights(src))}
    dst = {t.name: t for t in proto.graph.initializer}
    for a in weights(proto):
        w = numpy_helper.to_array(dst[a]).astype(np.float64)
        options = [(v if v.shape == w.shape else v.T) for v in theirs.values()
                   if v.shape == w.shape or v.T.shape == w.shape]
        assert options, f"no dequantized counterpart of {a}"
        best = min(options, key=lambda v: float(np.abs(v - w).max()))
        # int8 rounding moves a weight by at most half a step (max |w| / 254 per tensor)
        assert np.abs(best - w).max() <= 0.01 * np.abs(w).max(), f"{a} dequantized badly"
        dst[a].CopyFrom(numpy_helper.from_array(best.astype(np.float32), a))
    return proto


def _dynamic_dequantized(float_path, qfile):
    """The float model with each weight ``w`` that quantize_dynamic stored as ``w*_quantized``,
    ``_scale``, ``_zero_point`` replaced by ``(q - zero_point) * scale`` (per output channel)."""
    proto = onnx.load(str(float_path))
    q = {t.name: numpy_helper.to_array(t) for t in qfile.graph.initializer}
    for t in proto.graph.initializer:
        hits = [k[:-len("_quantized")] for k in q
                if k.startswith(t.name + "_") and k.endswith("_quantized") or k == t.name + "_quantized"]
        if not hits:
            continue
        base = hits[0]
        w, s, z = (q[base + "_quantized"].astype(np.float64), q[base + "_scale"],
                   q[base + "_zero_point"].astype(np.float64))
        axis = 0 if w.ndim == 4 else w.ndim - 1
        shape = [1] * w.ndim
        shape[axis] = -1
        v = (w - z.reshape(shape if z.size > 1 else [])) * s.reshape(shape if s.size > 1 else [])
        v = v if v.shape == tuple(t.dims) else v.T
        t.CopyFrom(numpy_helper.from_array(v.astype(np.float32), t.name))
    return proto


@pytest.mark.parametrize("name", ["shapes", "resnet"])
@pytest.mark.parametrize("form", ["qdq", "qoperator", "dynamic"])
def test_surrogate_equals_float_model_on_dequantized_weights(files, name, form, shapes_data,
                                                             photos):
    m = ov.load(files(name)[form], threads=2, gradients="surrogate")
    x = _x(name, files, shapes_data, photos)
    g = m.grad(x, 0)
    build = _dynamic_dequantized if form == "dynamic" else _dequantized_float
    ref = ov.load(build(files(name)["float32"], m.gradient_source() if form != "dynamic"
                        else onnx.load(str(files(name)[form]))), threads=2)
    want = ref.grad(x, 0)
    assert np.abs(g - want).max() <= 1e-4 * np.abs(want).max(), _rel(g, want)


@pytest.mark.parametrize("name", ["shapes", "resnet"])
@pytest.mark.parametrize("form", ["fp16", "fp16-io32", "mixed"])
def test_float16_gradients_within_1e2_of_float32(files, name, form, shapes_data, photos):
    m = ov.load(files(name)[form], threads=2)
    assert m.gradient_mode == "upcast"
    # both at the input the float16 file sees (a float16 input rounds the image)
    x = _x(name, files, shapes_data, photos).astype(m.input.dtype).astype(np.float32)
    want = ov.load(files(name)["float32"], threads=2).grad(x, 0)
    g = m.grad(x, 0)
    assert g.dtype == np.float32
    err = np.linalg.norm(g - want) / np.linalg.norm(want)  # relative (Frobenius) error
    assert err <= 1e-2, (err, _rel(g, want))


def test_gradient_with_respect_to_an_int8_tensor_is_refused_by_name(files, shapes_data, photos):
    from onnxviz.errors import OptionError

    m = ov.load(files("shapes")["qdq"], threads=2)
    q = next(n.output[0] for n in m.proto.graph.node if n.op_type == "QuantizeLinear")
    with pytest.raises(OptionError, match="int8|uint8"):
        m.grad(_x("shapes", files, shapes_data, photos), 0, wrt=q)
