"""The runs made while loading are sized before they are made: memory from the declared shapes
against the budget (smaller inputs where the graph allows it, one image at a time, or a refusal
with the numbers), loops from their constants; what remains stops at the probe time limit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

import onnxviz as ov
from onnxviz import limits, runtime
from onnxviz.model.inputs import find_input

from . import crafted


@pytest.fixture
def memory():
    """Set the memory budget for one test: ``memory("2G")``; the previous one comes back after."""
    previous = limits.memory_budget()
    yield limits.set_memory_budget
    limits.set_memory_budget(previous)


@pytest.fixture
def runs(monkeypatch):
    """The inputs of every run made through the probe runner (shapes, in order)."""
    seen = []
    real = limits.run_limited

    def watched(sess, outputs, feeds, *args, **kwargs):
        seen.append(next(iter(feeds.values())).shape)
        return real(sess, outputs, feeds, *args, **kwargs)

    monkeypatch.setattr(limits, "run_limited", watched)
    return seen


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test the moment anything would build or run an ONNX Runtime session."""
    def refuse(*args, **kwargs):
        raise AssertionError("an ONNX Runtime session was built or run")

    monkeypatch.setattr(runtime, "session", refuse)
    monkeypatch.setattr(limits, "run_limited", refuse)


def _reference(proto, x):
    """The scores ONNX Runtime gives for ``x`` on the file as written (batch 1 per run)."""
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])


# ---- memory -----------------------------------------------------------------------------------
def test_a_huge_declared_input_is_probed_at_a_smaller_size(memory, runs):
    """The issue's 1 KB file: a fixed 1x3x8000x8000 input, one Conv, GlobalAveragePool. Two
    probe images of 8000 x 8000 need gigabytes; the same checks run on 500 x 500 ones."""
    from onnxviz.model import budget

    memory("2G")
    m = ov.load(crafted.big_conv(8000).SerializeToString(), preprocess="unit")
    assert runs and all(max(shape[2:]) <= budget.PROBE_SIDE for shape in runs), runs
    assert any("checked at load on 500x500 inputs" in n for n in m.notes), m.notes
    assert m.input.size == (8000, 8000) and m.num_classes == 8
    assert m.layer("c").shape[2:] == (8000, 8000)
    with pytest.raises(ov.errors.ResourceError, match="memory budget of 2.0 GiB"):
        m.predict(np.zeros((8, 8, 3), np.uint8))


def test_a_model_probed_small_still_gives_the_files_scores(memory, runs):
    """Probed at 512 x 512, predicted at the declared 1024 x 1024: the scores are ONNX Runtime's
    on the file itself, and the batch checks made at the small size hold at the full one."""
    from onnxviz.model import budget

    proto = crafted.big_conv(1024)
    spec = find_input(proto)
    per = budget.image_bytes(proto, spec)
    memory(int(1.5 * per))  # one image fits, two do not
    m = ov.load(proto.SerializeToString(), preprocess="unit")
    assert all(shape[2:] == (512, 512) for shape in runs), runs
    assert not m.fixed_batch
    x = np.random.default_rng(0).standard_normal((2, 3, 1024, 1024)).astype(np.float32)
    np.testing.assert_allclose(m.forward(x), _reference(proto, x), rtol=1e-5, atol=1e-5)


def test_a_graph_that_needs_its_size_runs_one_image_at_a_time(memory, runs):
    """Flatten after the Conv: the scores' count follows the input size, so the probes cannot
    shrink; two images do not fit, one does: the probes and the model run one at a time."""
    from onnxviz.model import budget

    proto = crafted.big_conv(1024, stride=4, head="flatten")
    spec = find_input(proto)
    memory(int(1.5 * budget.image_bytes(proto, spec)))
    m = ov.load(proto.SerializeToString(), preprocess="unit")
    assert runs and all(shape[0] == 1 and shape[2:] == (1024, 1024) for shape in runs), runs
    assert m.fixed_batch and any("one at a time" in n for n in m.notes), m.notes
    x = np.random.default_rng(1).standard_normal((2, 3, 1024, 1024)).astype(np.float32)
    np.testing.assert_allclose(m.forward(x), _reference(proto, x), rtol=1e-5, atol=1e-5)


def test_a_model_whose_one_image_does_not_fit_is_refused_before_any_run(memory, nothing_runs):
    proto = crafted.big_conv(1024, stride=4, head="flatten")
    memory("20M")
    with pytest.raises(ov.errors.ResourceError,
                       match=r"one input of shape \(3, 1024, 1024\) needs about \d+ MiB, more "
                             "than the memory budget of 20 MiB"):
        ov.load(proto.SerializeToString(), preprocess="unit")


def test_the_shape_probe_is_sized_before_it_runs(memory):
    """The probe that completes the shapes static inference left open runs 3 images: refused
    when they do not fit, and the layers keep the sizes inference knows."""
    m = ov.load(ov.bundled_model("shapes_vit"))
    memory("1M")
    with pytest.raises(ov.errors.ResourceError, match="shape probe"):
        m.shape_facts()
    assert m.layers()  # what static inference knows, without the probe


def test_the_budget_follows_an_address_space_limit():
    """Under ``ulimit -v`` (RLIMIT_AS) of 5 GiB, on a machine with more free memory, the budget
    is at most half of what the limit leaves."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (5 << 30, 5 << 30)); "
            "from onnxviz import limits; print(limits.memory_budget())")
    env = {k: v for k, v in os.environ.items() if k != "ONNXVIZ_MEMORY_BUDGET"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 0 < int(out.stdout) <= 2.5 * (1 << 30)


def test_the_budget_follows_a_container_memory_limit(tmp_path):
    """cgroup v2: what ``memory.max`` leaves after ``memory.current``, less the page cache the
    kernel reclaims first (``inactive_file``)."""
    (tmp_path / "cgroup").write_text("0::/box\n")
    box = tmp_path / "fs" / "box"
    box.mkdir(parents=True)
    (box / "memory.max").write_text(f"{4 << 30}\n")
    (box / "memory.current").write_text(f"{3 << 30}\n")
    (box / "memory.stat").write_text(f"anon {2 << 30}\ninactive_file {1 << 30}\n")
    assert limits._cgroup_left(str(tmp_path / "cgroup"), str(tmp_path / "fs")) == 2 << 30
    (box / "memory.max").write_text("max\n")
    assert limits._cgroup_left(str(tmp_path / "cgroup"), str(tmp_path / "fs")) == float("inf")


def test_the_estimate_bounds_what_onnx_runtime_holds():
    """The estimate against the memory one run really takes: a subprocess runs one 3x3 Conv
    (64 channels in and out, the largest case of the blocked layout) on 3 images of 256 x 256
    and reads its own peak resident memory before and after."""
    code = """
import sys, numpy as np, onnxruntime as ort
from tests.hardening import crafted
from onnx import helper as h, TensorProto as T, numpy_helper as nh

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))

k = nh.from_array(np.ones((64, 64, 3, 3), np.float32), "k")
g = h.make_graph([h.make_node("Conv", ["x", "k"], ["y"], pads=[1, 1, 1, 1])], "g",
                 [h.make_tensor_value_info("x", T.FLOAT, ["N", 64, 256, 256])],
                 [h.make_tensor_value_info("y", T.FLOAT, ["N", 64, 256, 256])], [k])
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]); m.ir_version = 8
from onnxviz.model import budget
from onnxviz.model.inputs import find_input
print(3 * budget.image_bytes(m, find_input(m)))
x = np.ones((3, 64, 256, 256), np.float32)
s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
before = hwm()
s.run(None, {"x": x})
print(hwm() - before + x.nbytes)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr
    estimate, measured = (int(v) for v in out.stdout.split())
    assert measured <= estimate, (measured, estimate)


# ---- loops ------------------------------------------------------------------------------------
def _loop(trip=None, cond=True, body_cond="identity"):
    """``crafted.endless_loop`` with its trip count (None: absent), first condition (None:
    absent) and the body's condition output (``identity``, ``passthrough``, ``constant`` or
    ``computed``: ``i < 3``) chosen."""
    from onnx import TensorProto as T
    from onnx import helper as h

    body_nodes = [h.make_node("Add", ["v_in", "one"], ["v_out"])]
    body_inits = [h.make_tensor("one", T.FLOAT, [], [1.0])]
    cond_out = "cond_out"
    if body_cond == "identity":
        body_nodes.append(h.make_node("Identity", ["cond_in"], ["cond_out"]))
    elif body_cond == "passthrough":
        cond_out = "cond_in"
    elif body_cond == "constant":
        body_nodes.append(h.make_node("Constant", [], ["cond_out"],
                                      value=h.make_tensor("t", T.BOOL, [], [True])))
    else:
        body_nodes.append(h.make_node("Less", ["i", "three"], ["cond_out"]))
        body_inits.append(h.make_tensor("three", T.INT64, [], [3]))
    body = h.make_graph(
        body_nodes, "body",
        [h.make_tensor_value_info("i", T.INT64, []),
         h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("v_in", T.FLOAT, ["N", 3])],
        [h.make_tensor_value_info(cond_out, T.BOOL, []),
         h.make_tensor_value_info("v_out", T.FLOAT, ["N", 3])], body_inits)
    inits = []
    if trip is not None:
        inits.append(h.make_tensor("M", T.INT64, [], [trip]))
    if cond is not None:
        inits.append(h.make_tensor("c", T.BOOL, [], [cond]))
    nodes = [h.make_node("ReduceMean", ["x"], ["r"], axes=[2, 3], keepdims=0),
             h.make_node("Loop", ["M" if trip is not None else "", "c" if cond is not None
                                  else "", "r"], ["y"], body=body, name="endless")]
    return crafted._model(nodes, [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])], inits)


@pytest.mark.parametrize("trip, cond, body_cond, told", [
    (2**62, True, "identity", "runs 4,611,686,018,427,387,904 iterations"),
    (2**62, None, "passthrough", "runs 4,611,686,018,427,387,904 iterations"),
    (10**9, True, "constant", "runs 1,000,000,000 iterations"),
    (None, True, "identity", "never ends"),
    (None, None, "constant", "never ends"),
], ids=["2^62", "no-first-condition", "constant-body-condition", "no-trip-count", "while-true"])
def test_an_endless_loop_is_refused_from_its_constants(trip, cond, body_cond, told,
                                                       nothing_runs):
    with pytest.raises(ov.ModelError, match=f"Loop node 'endless' {told}"):
        ov.load(_loop(trip, cond, body_cond).SerializeToString(), preprocess="unit")


def test_the_issue_loop_is_refused_before_any_run(nothing_runs):
    with pytest.raises(ov.ModelError, match="probe limit of"):
        ov.load(crafted.endless_loop().SerializeToString(), preprocess="unit")


@pytest.mark.parametrize("trip, cond, body_cond, iterations", [
    (3, True, "identity", 3),
    (2**62, True, "computed", 4),  # a while loop (tf2onnx's form): its body ends it (i = 3)
    (2**62, False, "identity", 0),  # never entered
], ids=["short", "while-loop", "false-condition"])
def test_loops_that_end_are_loaded(trip, cond, body_cond, iterations):
    m = ov.load(_loop(trip, cond, body_cond).SerializeToString(), preprocess="unit")
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(m.forward(x), x.mean(axis=(2, 3)) + iterations, rtol=1e-5,
                               atol=1e-5)


def test_a_loop_its_constants_do_not_bound_stops_at_the_time_limit(monkeypatch):
    monkeypatch.setattr(limits, "PROBE_SECONDS", 1.0)
    with pytest.raises(ov.errors.ExecutionError, match="took more than 1 s"):
        ov.load(crafted.slow_loop().SerializeToString(), preprocess="unit")


def test_the_probe_time_limit_is_what_a_user_waits_for_at_a_prompt():
    env = {k: v for k, v in os.environ.items() if k != "ONNXVIZ_PROBE_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", "from onnxviz import limits; "
                          "print(limits.PROBE_SECONDS)"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 10
