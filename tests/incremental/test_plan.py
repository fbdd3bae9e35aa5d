"""The incremental plan's geometry against brute force: perturb one input rectangle, run the whole
graph in ONNX Runtime, and see which positions of each tensor change.

The plan's rectangle of every tensor must hold every changed position (else the incremental map
would be wrong); with Tanh activations and no max pooling (every input change reaches every
output it can), it must also be the smallest such rectangle.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from onnxviz.incremental.plan import make_plan, node_inputs, propagate
from onnxviz.incremental.rules import supported

from .nets import NETS


def run_all(model, x):
    """Every tensor of ``model`` on ``x`` (name -> array)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = [o for n in m.graph.node for o in n.output]
    types = {v.name: v.type.tensor_type.elem_type
             for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
    del m.graph.output[:]
    m.graph.output.extend(helper.make_tensor_value_info(t, types.get(t, TensorProto.FLOAT), None)
                          for t in names)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return {"x": x, **dict(zip(names, sess.run(names, {"x": x})))}


def changed_box(a, b, spatial):
    """Bounding box (y0, x0, y1, x1) of the positions where a and b differ, None if none."""
    diff = a != b
    axes = tuple(i for i in range(a.ndim) if i not in spatial)
    hit = diff.any(axis=axes)
    if not hit.any():
        return None
    ys, xs = np.nonzero(hit)
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def rects_for(h, w):
    """Interior, corner, edge and strip rectangles."""
    return np.array([[0, 0, 4, 4], [h - 3, w - 5, h, w], [7, 5, 12, 9], [0, 6, h, 9],
                     [h - 1, 0, h, 1], [3, w - 2, 10, w], [9, 9, 10, 10]], np.int64)


def perturbed(x, rect, spatial, rng):
    y = x.copy()
    idx = [slice(None)] * 4
    idx[spatial[0]], idx[spatial[1]] = slice(rect[0], rect[2]), slice(rect[1], rect[3])
    y[tuple(idx)] = rng.normal(0, 1, y[tuple(idx)].shape)
    return y


@pytest.mark.parametrize("act", ["Tanh", "Relu"])
@pytest.mark.parametrize("name", sorted(NETS))
def test_changed_rectangles_against_brute_force(name, act):
    model = NETS[name](act)
    rng = np.random.default_rng(1)
    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    spatial = (1, 2) if shape[3] == 3 else (2, 3)
    h, w = shape[spatial[0]], shape[spatial[1]]
    x = rng.normal(0, 1, shape).astype(np.float32)
    ref = run_all(model, x)
    shapes = {t: v.shape for t, v in ref.items()}
    rects = rects_for(h, w)
    boxes = {}
    plan = propagate(model, "x", spatial, shapes, rects, model.graph.output[0].name, 1.0, boxes)
    assert plan.reason is None
    tight = act == "Tanh" and name != "pooling"
    checked = 0
    for p, rect in enumerate(rects):
        got = run_all(model, perturbed(x, rect, spatial, rng))
        for t, box in boxes.items():
            if t == "x":
                continue
            want = changed_box(ref[t], got[t], plan.windows[t].spatial)
            mine = tuple(int(v) for v in box[p])
            if want is None:
                continue
            assert mine[0] <= want[0] and mine[1] <= want[1] and mine[2] >= want[2] and \
                mine[3] >= want[3], (t, rect, mine, want)
            if tight:
                assert mine == tuple(int(v) for v in want), (t, rect, mine, want)
            checked += 1
    assert checked >= 4 * len(rects)  # every tensor of the prefix, nearly every rectangle


@pytest.mark.parametrize("name", sorted(NETS))
def test_windows_hold_the_rectangles_inside_the_tensor(name):
    """Each window has one size for every position, lies inside its tensor and holds the
    changed rectangle; gathered reads stay inside the padded input."""
    model = NETS[name]("Relu")
    x = np.zeros([d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim],
                 np.float32)
    shapes = {t: v.shape for t, v in run_all(model, x).items()}
    spatial = (1, 2) if x.shape[3] == 3 else (2, 3)
    h, w = x.shape[spatial[0]], x.shape[spatial[1]]
    rects = np.array([[y, xx, min(h, y + 5), min(w, xx + 4)] for y in range(0, h, 2)
                      for xx in range(0, w, 3)])
    boxes = {}
    plan = propagate(model, "x", spatial, shapes, rects, model.graph.output[0].name, 1.0, boxes)
    for t, win in plan.windows.items():
        ya, xa = win.spatial
        H, W = win.shape[ya], win.shape[xa]
        b = boxes[t]
        assert (win.at >= 0).all() and (win.at[:, 0] + win.size[0] <= H).all()
        assert (win.at[:, 1] + win.size[1] <= W).all()
        nonempty = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        assert (win.at[nonempty, 0] <= b[nonempty, 0]).all()
        assert (win.at[nonempty, 0] + win.size[0] >= b[nonempty, 2]).all()
        assert (win.at[nonempty, 1] + win.size[1] >= b[nonempty, 3]).all()
    nodes = model.graph.node
    for step in plan.steps:
        out = plan.windows[nodes[step.index].output[0]]
        for r in step.reads.values():
            win = plan.windows[r.tensor]
            ya, xa = win.spatial
            Hp = win.shape[ya] + r.pads[0] + r.pads[1]
            Wp = win.shape[xa] + r.pads[2] + r.pads[3]
            assert (out.at[:, 0] * r.stride[0] + r.size[0] <= Hp).all()
            assert (out.at[:, 1] * r.stride[1] + r.size[1] <= Wp).all()


def test_the_cut_is_at_the_first_global_op():
    model = NETS["residual"]("Relu")
    shapes = {t: v.shape for t, v in run_all(model, np.zeros((1, 3, 20, 18), np.float32)).items()}
    plan = make_plan(model, "x", (2, 3), shapes, rects_for(20, 18), model.graph.output[0].name,
                     1.0)
    assert [c.split()[0] for c in plan.cut] == ["GlobalAveragePool"]
    assert len(plan.frontier) == 1 and 0 < plan.skipped < 1
    suffix_ops = {model.graph.node[i].op_type for i in plan.suffix}
    assert suffix_ops == {"GlobalAveragePool", "Flatten", "Gemm"}


def test_an_op_without_a_rule_cuts_the_graph_with_its_reason():
    """Softmax over channels is local but has no rule: the plan stops before it and names it."""
    n = NETS["strided_dilated"]("Relu")
    assert "Softmax" not in supported()
    first = n.graph.node[0]
    node = helper.make_node("Softmax", [first.output[0]], ["sm"], axis=1, name="sm")
    n.graph.node.insert(1, node)
    n.graph.node[2].input[0] = "sm"
    shapes = {t: v.shape for t, v in run_all(n, np.zeros((1, 3, 20, 18), np.float32)).items()}
    plan = make_plan(n, "x", (2, 3), shapes, rects_for(20, 18), n.graph.output[0].name, 1.0)
    assert plan.cut == ["Softmax 'sm'"] and plan.frontier == [first.output[0]]
    assert node_inputs(node) == [first.output[0]]
    plan = make_plan(n, "x", (2, 3), shapes, rects_for(20, 18), n.graph.output[0].name, 0.01)
    assert plan.reason.startswith("no op can run on crops") and "covers" in plan.reason


def test_projective_field_cap_keeps_the_centre():
    """Krypton's threshold: each rectangle is cut to ceil(tau x side) around its centre, inside
    the rectangle it was."""
    from onnxviz.incremental.plan import capped

    rng = np.random.default_rng(3)
    y0, x0 = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    box = np.stack([y0, x0, y0 + rng.integers(1, 20, 200), x0 + rng.integers(1, 20, 200)], 1)
    out = capped(box, (50, 40), 0.2)
    assert (out[:, 2] - out[:, 0] <= 10).all() and (out[:, 3] - out[:, 1] <= 8).all()
    assert (out[:, :2] >= box[:, :2]).all() and (out[:, 2:] <= box[:, 2:]).all()
    small = (box[:, 2] - box[:, 0] <= 10) & (box[:, 3] - box[:, 1] <= 8)
    assert (out[small] == box[small]).all()
    mid = (out[:, 0] + out[:, 2]) - (box[:, 0] + box[:, 2])
    assert (np.abs(mid) <= 1).all()


def test_zero_pads_fold_into_the_convs_that_alone_read_them():
    """Two Pads fold (one into a Conv with padding of its own, the amounts add up), the Pad that an
    Add also reads stays, and the folded graph computes the same logits."""
    from onnxviz.incremental.graphs import fold_pads
    from onnxviz.incremental.plan import constants

    model = NETS["zero_pads"]("Tanh")
    folded = fold_pads(model, constants(model))
    assert [n.op_type for n in model.graph.node].count("Pad") == 3
    assert [n.op_type for n in folded.graph.node].count("Pad") == 1
    pads = [list(next(a.ints for a in n.attribute if a.name == "pads"))
            for n in folded.graph.node if n.op_type == "Conv"]
    assert pads[:2] == [[0, 0, 1, 1], [3, 1, 2, 4]]
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 20, 18)).astype(np.float32)
    out = model.graph.output[0].name
    np.testing.assert_allclose(run_all(folded, x)[out], run_all(model, x)[out], rtol=1e-5,
                               atol=1e-5)
    plain = NETS["residual"]("Tanh")
    assert fold_pads(plain, constants(plain)) is plain  # nothing to fold: no copy


def test_tensors_whose_shape_alone_the_suffix_reads_are_not_pasted():
    """shape_head's flatten reads Shape(input)[:1] and Shape(mid)[1:2]: neither is frontier (no
    paste of the whole image per position); test_exact checks the maps."""
    model = NETS["shape_head"]("Tanh")
    shapes = {t: v.shape for t, v in run_all(model, np.zeros((1, 3, 20, 18), np.float32)).items()}
    plan = make_plan(model, "x", (2, 3), shapes, rects_for(20, 18), model.graph.output[0].name,
                     1.0)
    assert plan.reason is None
    mid = model.graph.node[1].output[0]
    assert set(plan.sized) == {"x", mid} and plan.sized["x"][1:] == (3, 20, 18)
    assert "x" not in plan.frontier and mid not in plan.frontier and plan.frontier
