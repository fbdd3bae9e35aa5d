"""Every reproducer of the hardening issue, run as a real ``onnxviz`` process.

Each case runs in its own process with a wall-clock timeout, its peak memory read by the child
itself at exit (``VmHWM``), and asserts: the exit status, one ``error:`` line and no traceback on
failure, the message naming the problem, and peak RSS under :data:`PEAK_LIMIT`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from . import crafted

#: Peak resident memory any single case may reach (the interpreter, ONNX Runtime, Numba and
#: OpenCV alone take about 0.4 GB).
PEAK_LIMIT = 2.5 * (1 << 30)
TIMEOUT = 120


def run_cli(argv, cwd, env=None, timeout=TIMEOUT, address_space=None):
    """``onnxviz ARGV`` in a subprocess: (status, stdout, stderr, peak RSS bytes, seconds);
    ``address_space`` bytes limit its address space (``ulimit -v``)."""
    full = {**os.environ, "ONNXVIZ_MEMORY_BUDGET": "2G", **(env or {})}
    t = time.perf_counter()
    peak_file = Path(cwd) / ".peak"
    full["ONNXVIZ_TEST_PEAK"] = str(peak_file)

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    p = subprocess.Popen([sys.executable, "-c", _CHILD, *argv], cwd=cwd, env=full,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         errors="backslashreplace",
                         preexec_fn=limit if address_space else None)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"onnxviz {' '.join(argv)} did not finish in {timeout} s")
    peak = int(peak_file.read_text()) * 1024 if peak_file.exists() else 0
    return p.returncode, out, err, peak, time.perf_counter() - t


#: ``onnxviz ARGV`` that writes its own peak RSS (VmHWM) at exit. The kernel's rusage of a child
#: counts the parent's memory at fork, so a large pytest process would look like a large child.
_CHILD = """
import atexit, os, sys

def _peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                with open(os.environ["ONNXVIZ_TEST_PEAK"], "w") as out:
                    out.write(line.split()[1])

atexit.register(_peak)
from onnxviz.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    f = {}
    for name in ("tiny", "gray", "nan_out", "batch_mixer", "endless_loop", "slow_loop",
                 "scalar_out", "string_out", "zipmap_out"):
        f[name] = crafted.save(getattr(crafted, name)(), d / f"{name}.onnx")
    f["big_input"] = crafted.save(crafted.big_input(20000), d / "big.onnx")
    f["huge_input"] = crafted.save(crafted.big_input(100000), d / "huge.onnx")
    f["big_conv"] = crafted.save(crafted.big_conv(8000), d / "big_conv.onnx")
    img = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(d / "img.png"), img)
    f["img"] = str(d / "img.png")
    (d / "bomb.png").write_bytes(crafted.png_header_only(30000, 30000))
    (d / "bomb1bit.png").write_bytes(crafted.png_header_only(60000, 60000, bit_depth=1))
    coll = d / "coll"
    coll.mkdir()
    cv2.imwrite(str(coll / "cat-2.png"), img)
    cv2.imwrite(str(coll / "cat.bmp"), img[::-1])
    cv2.imwrite(str(coll / "cat.png"), img[:, ::-1])
    bad = d / "withbad"
    bad.mkdir()
    cv2.imwrite(str(bad / "good.png"), img)
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (bad / "notes.txt").write_text("not an image")
    (d / "latin1.txt").write_bytes("caf\xe9\na\nb\nc\n".encode("latin-1"))
    os.mkfifo(d / "fifo")
    f["fifo"] = str(d / "fifo")
    return d, f


def _error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert "Traceback" not in err, err
    assert lines and "error:" in lines[-1], err
    assert sum("error:" in ln for ln in lines) == 1, err
    return lines[-1]


def _check(status, err, peak, want_status, needle):
    assert "Traceback" not in err, err
    assert status == want_status, (status, err)
    if want_status == 2:
        line = _error_line(err)
        if needle:
            assert needle in line, line
    elif needle:
        assert needle in err, err
    assert peak < PEAK_LIMIT, f"peak RSS {peak / 2**30:.2f} GiB"


# (id, argv with {name} placeholders, status, text expected in the error line or stderr)
CASES = [
    ("threads-huge", "predict {tiny} {img} --threads 100000", 2, "threads must be between"),
    ("threads-underscore", "predict {tiny} {img} --threads 1_000", 2, "threads must be between"),
    ("input-20000", "inspect {big_input}", 2, "memory budget"),
    ("input-100000", "inspect {huge_input}", 2, "memory budget"),
    ("fifo-model", "predict {fifo} {img}", 2, "not a regular file"),
    ("fifo-labels", "predict {tiny} {img} --labels {fifo}", 2, "not a regular file"),
    ("fifo-segments", "explain {tiny} {img} -m lime --segments {fifo} --out o", 2,
     "not a regular file"),
    ("dev-zero-model", "predict /dev/zero {img}", 2, "not a regular file"),
    ("bomb-png", "explain {tiny} {d}/bomb.png -m saliency --out o", 2, "pixels"),
    ("bomb-1bit-png", "predict {tiny} {d}/bomb1bit.png", 2, "pixels"),
    ("steps-huge", "filters {gray} --layer r --steps 99999999999999999999 --out o", 2,
     "steps must be"),
    ("octave-scale", "dream {gray} {img} --layer r --octave-scale 1e308 --out o", 2,
     "octave_scale must be"),
    ("blur-huge", "filters {gray} --layer r --blur 1e9 --out o", 2, "blur must be"),
    ("channels-999", "dream {gray} {img} --layer r --channels 999 --out o", 2, "channel 999"),
    ("lime-alpha-0", "explain {tiny} {img} -m lime --lime-alpha 0 --num-samples 20 --out o", 0,
     None),
    ("lime-alpha-neg", "explain {tiny} {img} -m lime --lime-alpha -1 --out o", 2,
     "alpha must be"),
    ("n-segments", "explain {tiny} {img} -m lime --n-segments -1 --out o", 2, "n_segments"),
    ("kernel-size-0", "explain {tiny} {img} -m lime --kernel-size 0 --out o", 2, "kernel_size"),
    ("kernel-width", "explain {tiny} {img} -m lime --kernel-width 1e308 --out o", 2,
     "kernel_width"),
    ("target-superscript", "explain {tiny} {img} -m saliency --target ² --out o", 2, "label"),
    ("patch-huge", "explain {tiny} {img} -m occlusion --patch 99999999999999999999 --out o", 2,
     "patch must be"),
    ("batch-huge", "explain {tiny} {img} -m occlusion --batch-size 1000000 --out o", 2,
     "batch_size must be"),
    ("samples-huge", "explain {tiny} {img} -m lime --num-samples 99999999999 --out o", 2,
     "num_samples must be"),
    ("ig-steps", "explain {tiny} {img} -m integrated_gradients --steps 200000 --out o", 2,
     "steps must be"),
    ("labels-latin1", "predict {tiny} {img} --labels {d}/latin1.txt", 2, "not UTF-8"),
    ("bench-images", "bench {tiny} -m saliency --images 99999999999", 2, "--images must be"),
    ("out-empty", "explain {tiny} {img} -m saliency --out ", 2, "--out must name a folder"),
    ("memory-flag-bad", "predict {tiny} {img} --memory lots", 2, "--memory must be a size"),
    ("memory-flag-small", "explain {big_input} {img} -m saliency --memory 64M --out o", 2,
     "memory budget of 64 MiB"),
    ("scalar-output", "predict {scalar_out} {img}", 2, "one row of scores"),
    ("string-output", "predict {string_out} {img}", 2, "numeric tensor"),
    ("zipmap-output", "predict {zipmap_out} {img}", 2, "numeric tensor"),
    ("filters-1-channel", "filters {gray} --layer r --steps 2 --out o", 0, None),
    ("dream-1-channel", "dream {gray} {img} --layer r --steps 2 --octaves 1 --out o", 0, None),
    ("nan-predict", "predict {nan_out} {img}", 0, "not valid"),
    ("nan-explain", "explain {nan_out} {img} -m saliency,occlusion --patch 8 --out o", 0,
     "not valid"),
    ("folder-with-bad-image", "explain {tiny} {d}/withbad -m saliency --out o", 0,
     "skipped"),
    ("all-skips-cam", "explain {tiny} {img} -m all --num-samples 50 --num-masks 50 --steps 4 "
     "--samples 2 --out o -q", 0, "skipped cam"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reproducer(case, w, tmp_path):
    d, f = w
    _, argv, status, needle = case
    args = argv.format(d=d, **f).split(" ")
    code, out, err, peak, _ = run_cli(args, tmp_path)
    _check(code, err, peak, status, needle)


def test_endless_loop_is_refused_from_its_constants(w, tmp_path):
    _, f = w
    code, _, err, peak, _ = run_cli(["inspect", f["endless_loop"]], tmp_path)
    _check(code, err, peak, 2, "runs 4,611,686,018,427,387,904 iterations")


@pytest.mark.parametrize("budget", ["2G", ""], ids=["budget-2G", "default-budget"])
def test_a_1kb_model_with_a_huge_input_stays_in_the_budget(budget, w, tmp_path):
    """The issue's 1 KB file (1x3x8000x8000, one Conv, GlobalAveragePool) under a 5 GiB address
    space: ``inspect`` describes it from probes on smaller inputs, ``predict`` refuses with the
    numbers; both stay under the peak limit."""
    _, f = w
    env = {"ONNXVIZ_MEMORY_BUDGET": budget}
    code, out, err, peak, _ = run_cli(["inspect", f["big_conv"]], tmp_path, env=env,
                                      address_space=5 << 30)
    _check(code, err, peak, 0, None)
    assert "checked at load on 500x500 inputs" in out and "Nx8x8000x8000" in out, out
    code, _, err, peak, _ = run_cli(["predict", f["big_conv"], f["img"]], tmp_path, env=env,
                                    address_space=5 << 30)
    _check(code, err, peak, 2, "more than the memory budget")


def test_slow_loop_stops_at_the_probe_time_limit(w, tmp_path):
    _, f = w
    code, _, err, peak, secs = run_cli(["inspect", f["slow_loop"]], tmp_path,
                                       env={"ONNXVIZ_PROBE_TIMEOUT": "3"})
    _check(code, err, peak, 2, "took more than 3 s")
    assert secs < 60


def test_nan_maps_are_reported_not_drawn(w, tmp_path):
    _, f = w
    code, out, err, _, _ = run_cli(["explain", f["nan_out"], f["img"], "-m", "saliency",
                                    "--out", "o", "--json"], tmp_path)
    assert code == 0, err
    import json

    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["outputs"] == {} and "NaN" in rec["extras"]["nonfinite"] + "nan"
    assert rec["score"] is None  # JSON has no NaN: null, never a bare NaN token
    assert not list((tmp_path / "o").glob("*.png"))
    code, _, err, _, _ = run_cli(["report", f["nan_out"], f["img"], "-m", "saliency",
                                  "--out", "r"], tmp_path)
    assert code == 0, err
    page = (tmp_path / "r" / "report.html").read_text()
    assert "not finite" in page


def test_batch_mixing_model_runs_one_image_at_a_time(w, tmp_path):
    _, f = w
    code, out, err, _, _ = run_cli(["predict", f["batch_mixer"], f["img"], f["img"], f["img"],
                                    "--json"], tmp_path)
    assert code == 0, err
    import json

    rows = json.loads(out)
    assert len(rows) == 3 and rows[0] == rows[1] == rows[2]
    assert "one row per image" in err


def test_colliding_names_do_not_overwrite(w, tmp_path):
    d, f = w
    code, out, err, _, _ = run_cli(["explain", f["tiny"], str(d / "coll"), "-m", "saliency",
                                    "--out", "o", "-q"], tmp_path)
    assert code == 0, err
    overlays = sorted(p.name for p in (tmp_path / "o").glob("*.overlay.png"))
    assert len(overlays) == 3, overlays


def test_target_goes_into_output_names(w, tmp_path):
    _, f = w
    for t in ("0", "1"):
        code, _, err, _, _ = run_cli(["explain", f["tiny"], f["img"], "-m", "saliency", "-t", t,
                                      "--out", "o", "-q"], tmp_path)
        assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "o").glob("*.overlay.png"))
    assert names == ["img.t0.saliency.overlay.png", "img.t1.saliency.overlay.png"], names


@pytest.mark.parametrize("kind", ["symlink-loop", "nul-byte", "long-name", "huge-tensor",
                                  "truncated"])
def test_external_data_edge_cases(kind, tmp_path):
    if kind == "symlink-loop":
        os.symlink("b.bin", tmp_path / "a.bin")
        os.symlink("a.bin", tmp_path / "b.bin")
        model = crafted.with_external(tmp_path, "a.bin")
        needle = "external data"
    elif kind == "nul-byte":
        model = crafted.with_external(tmp_path, "w\0.bin")
        needle = "refusing external data"
    elif kind == "long-name":
        model = crafted.with_external(tmp_path, "x" * 300 + ".bin")
        needle = "external data"
    elif kind == "huge-tensor":
        (tmp_path / "w.bin").write_bytes(b"\0" * 64)
        model = crafted.with_external(tmp_path, "w.bin", dims=(768, 1 << 20))  # 3 GiB of float
        needle = "memory budget"
    else:
        (tmp_path / "w.bin").write_bytes(b"\0" * 64)
        model = crafted.with_external(tmp_path, "w.bin")
        needle = "truncated"
    code, _, err, peak, _ = run_cli(["inspect", model], tmp_path)
    _check(code, err, peak, 2, needle)


def test_non_utf8_file_name_in_report(w, tmp_path):
    _, f = w
    folder = tmp_path / "imgs"
    folder.mkdir()
    name = os.fsencode(str(folder)) + b"/caf\xe9.png"
    with open(name, "wb") as fh:
        fh.write(Path(f["img"]).read_bytes())
    code, _, err, _, _ = run_cli(["report", f["tiny"], str(folder), "-m", "saliency",
                                  "--out", "r"], tmp_path)
    assert code == 0, err
    assert "caf" in (tmp_path / "r" / "report.html").read_text()
