"""Property-based test: malformed invocations and inputs never crash the CLI.

Hypothesis builds command lines from every subcommand, good and broken models (empty, garbage,
truncated, an image, a folder, a missing path, an unsupported operator, two inputs), good and broken
images (truncated, empty, text, folders, odd shapes, scikit-image names) and odd option values.
Whatever happens, the exit status is 0 or 2, nothing prints a traceback, and a failure ends with one
``error:`` line. Calls ``onnxviz.cli.main`` in-process for speed; a few real subprocess runs check
the console entry point end to end.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from viz_cli_helpers import photo, tiny_model_proto, write_png, write_tiny_model

from onnxviz.cli import main

EXAMPLES = 500  # of which >= 200 distinct invocations (checked)


def _two_input_model():
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"]),
         helper.make_node("ReduceMean", ["c"], ["m"], axes=[2, 3], keepdims=0)], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, 16, 16]) for n in "ab"],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, ["N", 3])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _custom_op_model():
    g = helper.make_graph(
        [helper.make_node("FancyPool", ["x"], ["y"], domain="com.example")], "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                               helper.make_opsetid("com.example", 1)])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Paths of good and bad inputs, by kind."""
    d = tmp_path_factory.mktemp("fuzz")
    tiny = write_tiny_model(d / "tiny.onnx")
    raw = tiny.read_bytes()
    models = {"tiny": tiny}
    for name, data in (("empty", b""), ("garbage", bytes(range(256)) * 7),
                       ("truncated", raw[: len(raw) // 2]), ("text", b"hello onnx\n")):
        models[name] = d / f"{name}.onnx"
        models[name].write_bytes(data)
    onnx.save(_two_input_model(), str(d / "two_inputs.onnx"))
    onnx.save(_custom_op_model(), str(d / "custom_op.onnx"))
    models["two_inputs"], models["custom_op"] = d / "two_inputs.onnx", d / "custom_op.onnx"
    models["missing"] = d / "nope.onnx"
    models["folder"] = d
    good = write_png(d / "good.png", photo())
    models["image"] = good
    cv2.imwrite(str(d / "good.jpg"), photo(seed=3))
    images = {"png": good, "jpg": d / "good.jpg", "missing": d / "nope.png"}
    gray16 = (np.linspace(0, 65535, 30 * 20).reshape(30, 20)).astype(np.uint16)
    cv2.imwrite(str(d / "gray16.png"), gray16)
    images["gray16"] = d / "gray16.png"
    rgba = np.dstack([photo(), np.full((40, 56), 128, np.uint8)])
    cv2.imwrite(str(d / "rgba.png"), rgba)
    images["rgba"] = d / "rgba.png"
    cv2.imwrite(str(d / "one_pixel.png"), np.zeros((1, 1, 3), np.uint8))
    images["one_pixel"] = d / "one_pixel.png"
    cv2.imwrite(str(d / "strip.png"), np.full((1, 300, 3), 90, np.uint8))
    images["strip"] = d / "strip.png"
    png = good.read_bytes()
    for name, data in (("truncated", png[: len(png) // 3]), ("empty", b""),
                       ("text", b"just text, not pixels"), ("header_only", png[:16])):
        images[name] = d / f"{name}.png"
        images[name].write_bytes(data)
    folder = d / "imgs"
    folder.mkdir()
    write_png(folder / "a.png", photo(seed=5))
    (folder / "readme.txt").write_text("skip me")
    images["folder"] = folder
    (d / "empty_dir").mkdir()
    images["empty_folder"] = d / "empty_dir"
    images["model_as_image"] = tiny
    for s in ("skimage:chelsea", "skimage:nope", "skimage:", "skimage:__init__"):
        images[s] = s
    labels = d / "labels.txt"
    labels.write_text("a\nb\nc\n")
    (d / "a_file").write_text("x")
    good = ("png", "jpg", "gray16", "rgba", "folder", "skimage:chelsea", "one_pixel", "strip")
    return {"models": models, "images": images, "dir": d, "labels": labels, "file": d / "a_file",
            # the valid model and images come up often enough for runs to get past loading
            "model_pool": [str(tiny)] * 16 + [str(m) for m in models.values()],
            "image_pool": [str(images[g]) for g in good] * 5 + [str(i) for i in images.values()]}


ODD = ["", " ", "-1", "0", "1", "2", "3", "0.5", "1.5", "-0.0", "nan", "inf", "-inf", "abc",
       "1,2", "1,2,3", ",", "2,", "None", "true", "[1]", "{}", "\u00e9t\u00e9", "1e-3", "0x10",
       "conv", "relu", "gap", "fc", "red", "blue", "gray", "mean", "blur", "black", "grid", "slic",
       "logit", "probability", "signed", "abs", "riemann", "center", "valid", "0-2", "3-1",
       '{"mean": [0, 0, 0], "std": [1, 1, 1]}', '{"mean": 1}', "imagenet", "tf", "caffe", "raw",
       "ste", "surrogate"]

#: Option values: the odd list above, sizes around the tiny model's 32 pixels, and any short text
#: a shell could pass (no NUL byte, no lone surrogate).
VALUES = st.one_of(
    st.sampled_from(ODD), st.sampled_from(ODD),
    st.sampled_from(["-5", "31", "33", "64", "257", "8,40"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8))

#: Flags of no subcommand or of another one (argparse must refuse them cleanly).
ALIEN = ["--bogus", "--stride", "--layer", "--octaves", "--methods", "--model", "-x"]

#: Methods weighted towards the quick ones; "all" runs every method with its defaults.
METHODS = ["gradcam", "saliency", "occlusion", "lime", "rise", "cam", "scorecam", "gradcam++",
           "smoothgrad", "integrated_gradients", "gradient_x_input", "hirescam", "xgradcam",
           "layercam", "gradcam,saliency", "gradcam,cam", "nope", "", "GradCAM", "all"]

COMMANDS = ["explain", "explain", "report", "bench", "activations", "filters", "dream", "predict",
            "inspect", "demo", "explode"]

#: Positional arguments per subcommand: (takes a model, takes images).
SHAPE = {"explain": (True, True), "report": (True, True), "activations": (True, True),
         "dream": (True, True), "predict": (True, True), "bench": (True, False),
         "filters": (True, False), "inspect": (True, False), "demo": (False, False),
         "explode": (True, True)}

#: Light settings, so an invocation that is valid does not spend long on work.
LIGHT = {"--num-samples": "20", "--segmentation": "slic", "--num-masks": "20", "--samples": "2",
         "--steps": "2", "--stride": "16", "--patch": "16", "--octaves": "1", "--images": "1"}

_FLAGS: dict[str, list[str]] = {}


def flags_of(cmd: str) -> list[str]:
    """The option strings of a subcommand, from the real parser."""
    if not _FLAGS:
        from onnxviz.cli import build_parser

        sub = next(a for a in build_parser()._actions if a.dest == "command")
        for name, p in sub.choices.items():
            _FLAGS[name] = sorted(o for o in p._option_string_actions if o.startswith("--")
                                  and o not in ("--help", "--debug"))
    return _FLAGS.get(cmd, [])


@st.composite
def invocations(draw, world):
    """A command line: the right shape most of the time, odd values in its options.

    One in four is drawn *careful*: no odd option values, so that valid runs stay common as the
    commands gain options (each new flag drawn with an odd value is one more way to fail; the
    property below wants both outcomes in earnest).
    """
    careful = draw(st.integers(0, 3)) == 0
    cmd = draw(st.sampled_from(COMMANDS))
    model = lambda: str(draw(st.sampled_from(world["model_pool"])))  # noqa: E731
    image = lambda: str(draw(st.sampled_from(world["image_pool"])))  # noqa: E731
    takes_model, takes_images = SHAPE[cmd]
    argv = [cmd]
    if takes_model and draw(st.integers(0, 9)):
        argv.append(model())
    if takes_images:
        least = 0 if draw(st.integers(0, 9)) == 0 else 1
        argv += [image() for _ in range(draw(st.integers(least, 2)))]
    methods = None
    if cmd in ("explain", "report", "bench", "demo") and draw(st.integers(0, 9)):
        methods = draw(st.sampled_from(METHODS))
        argv += ["-m", methods]
    if cmd == "demo":
        argv += ["--model", model(), "--image", image()]
    if cmd in ("activations", "filters", "dream") and draw(st.integers(0, 9)):
        argv += ["-l", draw(st.sampled_from(["relu", "conv", "gap", "nope", ""]))]
    own = flags_of(cmd)
    light = draw(st.booleans())
    for _ in range(0 if careful else draw(st.sampled_from([0, 0, 1, 2]))):
        fl = draw(st.sampled_from(own or ALIEN)) if draw(st.integers(0, 5)) else \
            draw(st.sampled_from(ALIEN))
        if fl in ("--json", "--npy", "--quiet", "--progress", "--no-progress", "--contrast",
                  "--no-contrast", "--version"):
            argv.append(fl)
        else:
            argv += [fl, draw(VALUES)]
    if "--out" in own and "--out" not in argv:
        out = draw(st.sampled_from(["dir", "dir", "file", "nested"]))
        argv += ["--out", {"dir": str(world["dir"] / "out"), "file": str(world["file"]),
                           "nested": str(world["dir"] / "n" / "e" / "st")}[out]]
    if light:  # keep valid runs short: light settings for options not already given
        for fl, v in LIGHT.items():
            if fl in own and fl not in argv and fits(fl, methods):
                argv += [fl, v]
    return argv


def fits(fl: str, methods: str | None) -> bool:
    """Whether a light setting applies: a command option, or an option of one chosen method."""
    from onnxviz.explainers.options import flag, option_table

    table = option_table()
    opt = fl[2:].replace("-", "_")
    if opt not in table:
        return True
    names = [m for m in (methods or "").split(",") if m]
    if len(names) != 1 or names == ["all"]:
        return True  # several methods: each takes the options it has
    return any(m == names[0] for m, _ in table[opt]) and flag(opt) == fl


def run_in_process(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: --help, --version, usage errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


ERROR_LINE = re.compile(r"^onnxviz( [\w-]+)?: error: \S")


def check(argv, code, out, err):
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    if code == 2:
        lines = [ln for ln in err.split("\n") if ln.strip()]  # not splitlines: \x0c is in a line
        assert lines and ERROR_LINE.match(lines[-1]), (argv, err)
        others = [ln for ln in lines[:-1]
                  if not ln.startswith(("usage:", " ", "onnxviz: warning:"))]
        assert not others, (argv, err)


def test_fuzz_cli_in_process(world, monkeypatch):
    monkeypatch.chdir(world["dir"])  # relative --out values land in the temporary folder
    # A few invocations that must be valid, to show the fuzzed space is not all errors.
    tiny, png = str(world["models"]["tiny"]), str(world["images"]["png"])
    for argv in (["explain", tiny, png, "-m", "gradcam", "--out", str(world["dir"] / "ok")],
                 ["predict", tiny, png], ["report", tiny, png, "-m", "saliency", "--out",
                                          str(world["dir"] / "ok.html")]):
        code, out, err = run_in_process(argv)
        assert code == 0, err
    seen = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(invocations(world))
    def prop(argv):
        code, out, err = run_in_process(argv)
        check(argv, code, out, err)
        seen.append((tuple(argv), code))

    prop()
    distinct = dict(seen)
    assert len(distinct) >= 200, len(distinct)
    ok = sum(code == 0 for code in distinct.values())
    assert 0.1 * len(distinct) < ok < 0.9 * len(distinct), ok  # both outcomes, in earnest


@pytest.mark.parametrize("argv,code,needle", [
    (["explain", "MISSING.onnx", "skimage:chelsea", "-m", "gradcam"], 2, "not found"),
    (["explain", "TINY", "CORRUPT", "-m", "gradcam"], 2, "CORRUPT"),
    (["explain", "TINY", "skimage:chelsea", "-m", "gradkam"], 2, "unknown method"),
    (["report", "TINY", "skimage:chelsea", "--bogus"], 2, "unrecognized arguments"),
    (["explain", "--help"], 0, None),
])
def test_console_entry_point(argv, code, needle, tmp_path):
    tiny = write_tiny_model(tmp_path / "tiny.onnx")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    subs = {"TINY": str(tiny), "CORRUPT": str(corrupt), "MISSING.onnx": str(tmp_path / "m.onnx")}
    argv = [subs.get(a, a) for a in argv]
    r = subprocess.run([sys.executable, "-m", "onnxviz.cli", *argv, "--out", str(tmp_path / "o")]
                       if argv[-1] != "--help" else [sys.executable, "-m", "onnxviz.cli", *argv],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    if needle:
        lines = r.stderr.strip().splitlines()
        assert ERROR_LINE.match(lines[-1]) and needle in lines[-1].replace(str(corrupt), "CORRUPT")
        if "unrecognized" not in needle:
            assert len(lines) == 1, r.stderr
    else:
        assert "--method" in r.stdout


def test_tiny_model_is_valid():
    onnx.checker.check_model(tiny_model_proto(), full_check=True)
