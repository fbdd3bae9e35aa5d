"""Every gradient rule, for each attribute variant, against central finite differences.

Each case is one node in a small inline graph. Inputs are distinct values spread over a range
(no ties for Max/MaxPool, no zeros for ReLU-like kinks). The graph runs in float64 when ONNX
Runtime has float64 kernels for the op (eps 1e-6: truncation error ~eps^2, rounding ~1e-16/eps,
both far below the 1e-6 tolerance); otherwise in float32 with eps 1e-3 (rounding ~1e-7/1e-3 =
1e-4 relative) and a 2e-3 relative tolerance. Inputs are kept at least 2/n apart and away from
kinks by more than eps, so central differences never straddle a kink.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxviz.autodiff import gradient_model

from _autodiff_helpers import NP, finite_diff, make_model, run_grads, session, spread


@dataclass
class V:
    """A differentiable graph input."""

    shape: tuple
    lo: float = -1.0
    hi: float = 1.0
    wrt: bool = True


@dataclass
class Case:
    id: str
    op: str
    inputs: list  # V (graph input), np.ndarray (initializer; float64 ones follow the test dtype), None
    attrs: dict = field(default_factory=dict)
    opset: int = 17
    n_out: int = 1
    of: int = 0


def i64(*v):
    return np.asarray(v, np.int64)


def f32(*v):
    return np.asarray(v, np.float32)


def f(*v):
    return np.asarray(v, np.float64)


W33 = np.random.RandomState(1).randn(4, 3, 3, 3) * 0.3
CASES = [
    # --- element-wise arithmetic (broadcasting undone) ---
    Case("add_bcast", "Add", [V((2, 3, 4)), V((3, 1))]),
    Case("sub_bcast", "Sub", [V((3, 1)), V((2, 3, 4))]),
    Case("mul_bcast", "Mul", [V((2, 3, 4)), V((4,))]),
    Case("div", "Div", [V((2, 3)), V((2, 3), 0.5, 2.0)]),
    Case("div_bcast_const", "Div", [V((2, 3, 2)), f(2.0, 4.0)]),
    Case("pow_both", "Pow", [V((2, 3), 0.5, 2.0), V((3,), 0.5, 2.5)]),
    Case("pow_const", "Pow", [V((2, 3), 0.5, 2.0), f(2.5)]),
    Case("neg", "Neg", [V((2, 3))]),
    Case("abs", "Abs", [V((2, 3))]),
    Case("sqrt", "Sqrt", [V((2, 3), 0.5, 2.0)]),
    Case("exp", "Exp", [V((2, 3))]),
    Case("log", "Log", [V((2, 3), 0.5, 2.0)]),
    Case("reciprocal", "Reciprocal", [V((2, 3), 0.5, 2.0)]),
    Case("erf", "Erf", [V((2, 3))]),
    Case("sum3", "Sum", [V((2, 3)), V((3,)), V((2, 1))]),
    Case("mean3", "Mean", [V((2, 3)), V((3,)), V((2, 1))]),
    Case("max2", "Max", [V((2, 3)), V((3,), -0.9, 0.8)]),
    Case("min3", "Min", [V((2, 3)), V((3,), -0.9, 0.8), V((2, 1), -0.7, 0.6)]),
    Case("max_opset8", "Max", [V((2, 3)), V((2, 3), -0.9, 0.8)], opset=8),
    Case("where", "Where", [np.array([[True, False, True], [False, True, True]]), V((2, 3)), V((3,))]),
    # --- activations ---
    Case("relu", "Relu", [V((2, 3, 4))]),
    Case("relu_opset8", "Relu", [V((2, 3, 4))], opset=8),
    Case("leaky_relu", "LeakyRelu", [V((2, 3, 4))], {"alpha": 0.1}),
    Case("prelu", "PRelu", [V((2, 3, 4)), V((3, 1), 0.1, 0.5)]),
    Case("elu", "Elu", [V((2, 3, 4))], {"alpha": 0.7}),
    Case("selu", "Selu", [V((2, 3, 4))]),
    Case("sigmoid", "Sigmoid", [V((2, 3, 4), -4, 4)]),
    Case("hard_sigmoid", "HardSigmoid", [V((2, 3, 4), -4, 4)], {"alpha": 0.25, "beta": 0.4}),
    Case("hard_swish", "HardSwish", [V((2, 3, 5), -5.1, 5.1)]),
    Case("tanh", "Tanh", [V((2, 3, 4), -2, 2)]),
    Case("softplus", "Softplus", [V((2, 3, 4), -3, 3)]),
    Case("softsign", "Softsign", [V((2, 3, 4), -3, 3)]),
    Case("gelu", "Gelu", [V((2, 3, 4), -3, 3)], opset=20),
    Case("gelu_tanh", "Gelu", [V((2, 3, 4), -3, 3)], {"approximate": "tanh"}, opset=20),
    Case("clip_attr", "Clip", [V((2, 3, 4), -2, 2)], {"min": -0.5, "max": 0.6}, opset=8),
    Case("clip_inputs", "Clip", [V((2, 3, 4), -1, 7), f(0.0), f(6.0)], opset=13),
    Case("clip_min_only", "Clip", [V((2, 3, 4)), f(0.1)], opset=13),
    Case("softmax_11", "Softmax", [V((2, 3, 4))], {"axis": 1}, opset=11),
    Case("softmax_13", "Softmax", [V((2, 3, 4))], {"axis": 1}, opset=13),
    Case("logsoftmax_11", "LogSoftmax", [V((2, 3, 4))], {"axis": 1}, opset=11),
    Case("logsoftmax_13", "LogSoftmax", [V((2, 3, 4))], opset=13),
    # --- convolutions and dense layers ---
    Case("conv_pad1", "Conv", [V((2, 3, 5, 5)), W33], {"pads": [1, 1, 1, 1]}),
    Case("conv_bias", "Conv", [V((1, 3, 5, 5)), W33, f(0.1, 0.2, 0.3, 0.4)]),
    Case("conv_stride2_asym", "Conv", [V((1, 3, 6, 7)), W33], {"strides": [2, 2], "pads": [0, 1, 1, 0]}),
    Case("conv_dilation", "Conv", [V((1, 3, 7, 7)), W33], {"dilations": [2, 2], "pads": [2, 1, 2, 1]}),
    Case("conv_group2", "Conv", [V((1, 4, 5, 5)), np.random.RandomState(2).randn(6, 2, 3, 3) * 0.3],
         {"group": 2, "pads": [1, 1, 1, 1]}),
    Case("conv_depthwise_s2", "Conv", [V((1, 3, 6, 6)), np.random.RandomState(3).randn(3, 1, 3, 3)],
         {"group": 3, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    Case("conv_same_upper", "Conv", [V((1, 3, 6, 5)), W33], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    Case("conv_same_lower", "Conv", [V((1, 3, 5, 5)), W33], {"auto_pad": "SAME_LOWER"}),
    Case("conv_valid_1d", "Conv", [V((2, 3, 7)), np.random.RandomState(4).randn(2, 3, 3)], {"auto_pad": "VALID"}),
    Case("conv_pointwise", "Conv", [V((2, 3, 4, 5)), np.random.RandomState(8).randn(6, 3, 1, 1)]),
    Case("conv_pointwise_1d_bias", "Conv", [V((2, 3, 5)), np.random.RandomState(9).randn(4, 3, 1), f(1, 2, 3, 4)]),
    Case("conv_weights_input", "Conv", [V((1, 3, 5, 5)), V((4, 3, 3, 3), wrt=False)], {"pads": [1, 1, 1, 1]}),
    Case("convtranspose_s2", "ConvTranspose", [V((1, 4, 3, 3)), np.random.RandomState(5).randn(4, 2, 3, 3)],
         {"strides": [2, 2], "pads": [1, 0, 1, 1], "output_padding": [1, 0]}),
    Case("convtranspose_group", "ConvTranspose", [V((1, 4, 3, 3)), np.random.RandomState(6).randn(4, 1, 2, 2)],
         {"group": 2, "strides": [2, 2]}),
    Case("gemm", "Gemm", [V((2, 3)), V((3, 4)), V((4,))], {"alpha": 0.7, "beta": 1.3}),
    Case("gemm_trans", "Gemm", [V((3, 2)), V((4, 3)), V((2, 1))], {"transA": 1, "transB": 1}),
    Case("gemm_transA", "Gemm", [V((3, 2)), V((3, 4))], {"transA": 1}, opset=13),
    Case("gemm_opset9", "Gemm", [V((2, 3)), V((4, 3)), V((4,))], {"transB": 1}, opset=9),
    Case("matmul_2d", "MatMul", [V((2, 3)), V((3, 4))]),
    Case("matmul_batched_bcast", "MatMul", [V((2, 1, 3, 4)), V((3, 4, 2))]),
    Case("matmul_vec_left", "MatMul", [V((3,)), V((2, 3, 4))]),
    Case("matmul_vec_right", "MatMul", [V((2, 2, 3)), V((3,))]),
    Case("matmul_vecs", "MatMul", [V((3,)), V((3,))]),
    # --- normalization ---
    Case("batchnorm", "BatchNormalization", [V((2, 3, 2, 2)), f(0.5, 1.5, -1.0), f(0.1, 0.2, 0.3),
                                             f(0.1, -0.2, 0.3), f(0.5, 1.0, 2.0)], {"epsilon": 1e-3}, opset=15),
    Case("batchnorm_2d", "BatchNormalization", [V((4, 3)), f(0.5, 1.5, -1.0), f(0.1, 0.2, 0.3),
                                                f(0.1, -0.2, 0.3), f(0.5, 1.0, 2.0)], opset=9),
    Case("instancenorm", "InstanceNormalization", [V((2, 3, 2, 3)), f(0.5, 1.5, -1.0), f(0.1, 0.2, 0.3)]),
    Case("layernorm", "LayerNormalization", [V((2, 3, 4)), spread(np.random.RandomState(7), (4,), 0.5, 1.5),
                                             f(0.1, 0.2, 0.3, 0.4)]),
    Case("layernorm_axis1", "LayerNormalization", [V((2, 3, 2)), np.full((3, 2), 1.3)], {"axis": 1}),
    Case("lrn3", "LRN", [V((2, 5, 2, 2))], {"size": 3, "alpha": 0.5, "beta": 0.75, "bias": 1.5}),
    Case("lrn5", "LRN", [V((1, 6, 2, 2))], {"size": 5, "alpha": 0.3, "beta": 0.6, "bias": 2.0}),
    # --- pooling ---
    Case("maxpool_2x2", "MaxPool", [V((2, 2, 4, 4))], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    Case("maxpool_overlap", "MaxPool", [V((1, 2, 5, 5))], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    Case("maxpool_overlap_13", "MaxPool", [V((1, 2, 5, 5))], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=13),
    Case("maxpool_overlap_9", "MaxPool", [V((1, 2, 5, 5))], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=9),
    Case("maxpool_ceil", "MaxPool", [V((1, 2, 6, 6))], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, opset=12),
    Case("maxpool_dilation", "MaxPool", [V((1, 1, 6, 6))], {"kernel_shape": [2, 2], "dilations": [2, 2]}, opset=12),
    Case("maxpool_stride1", "MaxPool", [V((1, 2, 4, 4))], {"kernel_shape": [2, 2]}, opset=11),
    Case("avgpool_pad_exclude", "AveragePool", [V((1, 2, 5, 5))], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    Case("avgpool_pad_include", "AveragePool", [V((1, 2, 5, 5))], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1], "count_include_pad": 1}),
    Case("avgpool_ceil", "AveragePool", [V((1, 2, 6, 6))], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    Case("avgpool_floor_rem", "AveragePool", [V((1, 1, 7, 7))], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    Case("global_avgpool", "GlobalAveragePool", [V((2, 3, 3, 2))]),
    Case("global_maxpool", "GlobalMaxPool", [V((2, 3, 3, 2))]),
    # --- reductions ---
    Case("reducesum_attr", "ReduceSum", [V((2, 3, 4))], {"axes": [1], "keepdims": 0}, opset=11),
    Case("reducesum_input", "ReduceSum", [V((2, 3, 4)), i64(0, 2)], opset=13),
    Case("reducemean_attr", "ReduceMean", [V((2, 3, 4))], {"axes": [-1]}, opset=13),
    Case("reducemean_input", "ReduceMean", [V((2, 3, 4)), i64(1)], {"keepdims": 0}, opset=18),
    Case("reducemax_attr", "ReduceMax", [V((2, 3, 4))], {"axes": [2], "keepdims": 0}, opset=13),
    Case("reducemax_all", "ReduceMax", [V((2, 3, 4))], opset=18),
    Case("reducemin_input", "ReduceMin", [V((2, 3, 4)), i64(0)], opset=18),
    # --- data movement ---
    Case("reshape", "Reshape", [V((2, 3, 4)), i64(4, -1)]),
    Case("flatten", "Flatten", [V((2, 3, 2, 2))], {"axis": 2}),
    Case("squeeze_11", "Squeeze", [V((2, 1, 3))], {"axes": [1]}, opset=11),
    Case("unsqueeze_13", "Unsqueeze", [V((2, 3)), i64(0, 3)], opset=13),
    Case("transpose", "Transpose", [V((2, 3, 4))], {"perm": [1, 2, 0]}),
    Case("transpose_default", "Transpose", [V((2, 3, 4))]),
    Case("concat", "Concat", [V((2, 1, 3)), V((2, 2, 3)), np.ones((2, 1, 3))], {"axis": 1}),
    Case("split_13", "Split", [V((2, 6)), i64(1, 2, 3)], {"axis": 1}, opset=13, n_out=3, of=1),
    Case("split_18", "Split", [V((2, 6))], {"axis": 1, "num_outputs": 3}, opset=18, n_out=3, of=2),
    Case("split_11", "Split", [V((4, 3))], {"split": [1, 3]}, opset=11, n_out=2, of=0),
    Case("slice_steps1", "Slice", [V((3, 5)), i64(1, 1), i64(3, -1)]),
    Case("slice_steps2", "Slice", [V((3, 6)), i64(0, 5), i64(3, 0), i64(0, 1), i64(2, -2)]),
    Case("slice_opset9", "Slice", [V((3, 5))], {"starts": [1], "ends": [4], "axes": [1]}, opset=9),
    Case("pad_constant", "Pad", [V((2, 3)), i64(1, 0, 2, 1)], {"mode": "constant"}),
    Case("pad_negative", "Pad", [V((2, 4)), i64(0, -1, 1, 1)], {"mode": "constant"}),
    Case("pad_reflect", "Pad", [V((1, 1, 4, 5)), i64(0, 0, 2, 1, 0, 0, 1, 3)], {"mode": "reflect"}),
    Case("pad_edge", "Pad", [V((1, 1, 4, 5)), i64(0, 0, 2, 1, 0, 0, 1, 3)], {"mode": "edge"}),
    Case("pad_axes_18", "Pad", [V((2, 3, 4)), i64(1, 2, 0, 1), None, i64(1, 2)], {"mode": "reflect"}, opset=18),
    Case("pad_attr_8", "Pad", [V((2, 3))], {"pads": [1, 1, 0, 2], "mode": "edge"}, opset=8),
    Case("gather_dups", "Gather", [V((2, 4, 3)), i64(3, 0, 3, -1, 2)], {"axis": 1}),
    Case("gather_scalar", "Gather", [V((3, 4)), np.asarray(2, np.int64)], {"axis": 0}),
    Case("gather_perm", "Gather", [V((1, 3, 2, 2)), i64(2, 1, 0)], {"axis": 1}),
    Case("expand", "Expand", [V((3, 1)), i64(2, 3, 4)]),
    Case("tile", "Tile", [V((2, 3)), i64(2, 3)]),
    Case("depth_to_space_dcr", "DepthToSpace", [V((1, 8, 2, 3))], {"blocksize": 2}),
    Case("depth_to_space_crd", "DepthToSpace", [V((1, 8, 2, 3))], {"blocksize": 2, "mode": "CRD"}),
    Case("space_to_depth", "SpaceToDepth", [V((1, 2, 4, 6))], {"blocksize": 2}),
    Case("resize_nearest", "Resize", [V((1, 2, 3, 4)), None, f32(1, 1, 2, 2)], {"mode": "nearest"}),
    Case("resize_nearest_asym_floor", "Resize", [V((1, 2, 3, 3)), None, f32(1, 1, 1.5, 2.5)],
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    Case("resize_linear", "Resize", [V((1, 2, 3, 4)), None, f32(1, 1, 2, 1.5)], {"mode": "linear"}),
    Case("resize_linear_align", "Resize", [V((1, 1, 3, 4)), None, None, i64(1, 1, 5, 7)],
         {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
    Case("resize_cubic", "Resize", [V((1, 1, 4, 4)), None, f32(1, 1, 2, 2)], {"mode": "cubic"}),
    Case("resize_opset10", "Resize", [V((1, 2, 3, 3)), f32(1, 1, 2, 2)], {"mode": "nearest"}, opset=10),
    Case("upsample_9", "Upsample", [V((1, 2, 2, 3)), f32(1, 1, 2, 3)], {"mode": "nearest"}, opset=9),
    Case("upsample_7", "Upsample", [V((1, 2, 2, 3))], {"mode": "linear", "scales": [1.0, 1.0, 2.0, 2.0]}, opset=7),
    Case("identity", "Identity", [V((2, 3))]),
    Case("dropout", "Dropout", [V((2, 3))], opset=13),
    Case("cast", "Cast", [V((2, 3))], {"to": TensorProto.DOUBLE}),
]


def _build(case: Case, dtype: int, rng):
    inputs, inits, feeds, names, wrt = [], [], {}, [], []
    for k, spec in enumerate(case.inputs):
        name = f"in{k}"
        if spec is None:
            names.append("")
            continue
        names.append(name)
        if isinstance(spec, V):
            x = spread(rng, spec.shape, spec.lo, spec.hi).astype(NP[dtype])
            feeds[name] = x
            inputs.append(helper.make_tensor_value_info(name, dtype, list(spec.shape)))
            if spec.wrt:
                wrt.append(name)
        else:
            arr = spec.astype(NP[dtype]) if spec.dtype == np.float64 else spec
            inits.append(numpy_helper.from_array(arr, name))
    attrs = dict(case.attrs)
    if case.op == "Cast":
        attrs["to"] = dtype
    outs = [f"out{k}" for k in range(case.n_out)]
    node = helper.make_node(case.op, names, outs, name="node", **attrs)
    model = make_model([node], inputs, [helper.make_tensor_value_info(o, dtype, None) for o in outs],
                       inits, opset=case.opset)
    return model, feeds, wrt, outs[case.of]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_matches_finite_differences(case):
    rng = np.random.RandomState(0)
    for dtype, eps, tol in ((TensorProto.DOUBLE, 1e-6, 1e-6), (TensorProto.FLOAT, 1e-3, 2e-3)):
        model, feeds, wrt, of = _build(case, dtype, rng)
        try:
            sess = session(model)
            session(gradient_model(model, of=of, wrt=wrt).model)
            break
        except Exception as e:  # noqa: BLE001 - no float64 kernel: fall back to float32
            if "NOT_IMPLEMENTED" not in str(e) and "Could not find an implementation" not in str(e):
                raise
    y = sess.run([of], feeds)[0]
    seed = np.asarray(rng.randn(*y.shape)).astype(y.dtype)
    grads, _ = run_grads(model, of, wrt, feeds, seed)
    for name in wrt:
        expect = finite_diff(sess, of, feeds, name, seed, eps)
        got = grads[name]
        assert got.shape == feeds[name].shape, name
        scale = max(np.abs(expect).max(), 1e-3)
        np.testing.assert_allclose(got, expect, rtol=0, atol=tol * scale, err_msg=f"d/d{name}")
