"""The newcomer's first hour: one vocabulary across commands, batches that finish, results that
say what they are. Each case was a stumble reproduced on main before it was fixed."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from viz_cli_helpers import LIGHT, cli, photo, write_png, write_tiny_model

from onnxviz.cli import build_parser

QUICK = [*LIGHT["lime"], "--num-masks", "30", *LIGHT["occlusion"], "--samples", "2",
         "--steps", "3", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("first_hour")
    f = {"tiny": write_tiny_model(d / "tiny.onnx"), "img": write_png(d / "pic.png", photo())}
    folder = d / "photos"
    folder.mkdir()
    write_png(folder / "a.png", photo(seed=1))
    write_png(folder / "b.png", photo(seed=2))
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)  # unreadable
    from PIL import Image

    Image.fromarray(photo(seed=3)).save(folder / "d.gif")
    f["folder"] = folder
    # a flatten -> dense model: CAM does not apply (no global-average-pooling head)
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3 * 32 * 32, 3))
                                .astype(np.float32) / 50, "w")
    g = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.metadata_props.add(key="onnxviz.preprocess", value='{"preset": "unit"}')
    f["dense"] = d / "dense.onnx"
    f["dense"].write_bytes(m.SerializeToString())
    return f


def _sub(name):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[name]


@pytest.mark.parametrize("command", ["explain", "report", "demo", "bench", "evaluate",
                                     "snapshot", "serve"])
def test_method_flag_is_the_same_everywhere(command):
    p = _sub(command)
    flags = {s for a in p._actions if a.dest == "methods" for s in a.option_strings}
    assert {"--method", "--methods", "-m"} <= flags


@pytest.mark.parametrize("command", ["explain", "report", "bench"])
def test_method_options_have_one_name_everywhere(command):
    p = _sub(command)
    strings = {s for a in p._actions for s in a.option_strings}
    assert "--lime-alpha" in strings and "--num-samples" in strings


@pytest.mark.parametrize("command", ["inspect", "predict", "explain", "activations", "filters",
                                     "dream", "report", "bench", "demo", "convert", "serve",
                                     "evaluate", "snapshot", "check"])
def test_help_shows_two_examples(command, capsys):
    code, out, _ = cli([command, "--help"], capsys)
    assert code == 0
    tail = out[out.lower().rindex("example"):]
    assert tail.count("onnxviz ") >= 2, tail


def test_help_shows_allowed_values(capsys):
    _, out, _ = cli(["explain", "--help"], capsys)
    assert "an integer in [1, 100_000]" in out  # --num-samples
    assert "a number in (0, 1]" not in out or "--p" in out


def test_report_out_is_a_folder(files, tmp_path, capsys):
    code, out, err = cli(["report", files["tiny"], files["img"], "-m", "saliency",
                          "--out", tmp_path / "out7"], capsys)
    assert code == 0, err
    assert (tmp_path / "out7" / "report.html").is_file()
    assert out.strip().endswith("report.html")


def test_all_skips_what_cannot_run_and_finishes(files, tmp_path, capsys):
    code, out, err = cli(["explain", files["dense"], files["img"], "-m", "all", "--out", tmp_path,
                          *QUICK], capsys)
    assert code == 0, err
    assert "skipped cam" in err and "skipped gradcam" in err
    assert "map(s) written" in err  # the closing summary
    assert "saliency" in out and "occlusion" in out


def test_strict_stops_at_the_first_failure(files, tmp_path, capsys):
    code, _, err = cli(["explain", files["dense"], files["img"], "-m", "saliency,cam",
                        "--strict", "--out", tmp_path, "-q"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("onnxviz: error:")


def test_a_bad_image_in_a_folder_does_not_stop_it(files, tmp_path, capsys):
    code, out, err = cli(["explain", files["tiny"], files["folder"], "-m", "saliency",
                          "--out", tmp_path, "-q"], capsys)
    assert code == 0, err
    assert "skipped" in err and "c.png" in err
    written = sorted(p.name for p in tmp_path.glob("*.overlay.png"))
    assert written == ["a.saliency.overlay.png", "b.saliency.overlay.png",
                       "d.saliency.overlay.png"]  # .gif read in a folder as by name


def test_predict_takes_folders(files, capsys):
    code, out, err = cli(["predict", files["tiny"], files["folder"], "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["image"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "b.png", "d.gif"]


def test_nothing_to_do_is_an_error(files, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"not a png")
    (bad / "y.png").write_bytes(b"not a png")
    code, _, err = cli(["explain", files["tiny"], bad, "-m", "saliency", "--out", tmp_path],
                       capsys)
    assert code == 2 and "nothing to show" in err


def test_score_units_and_layer_are_labelled(files, tmp_path, capsys):
    code, out, err = cli(["explain", files["tiny"], files["img"], "-m", "gradcam,occlusion",
                          "--json", "--out", tmp_path, *QUICK], capsys)
    assert code == 0, err
    recs = {r["method"]: r for r in map(json.loads, out.strip().splitlines())}
    assert recs["gradcam"]["extras"] and recs["gradcam"]["params"]["layer"] == "relu"
    assert recs["occlusion"]["score_kind"] == "probability"
    assert recs["gradcam"]["score_kind"] == "logit"
    code, out, _ = cli(["explain", files["tiny"], files["img"], "-m", "gradcam", "--out",
                        tmp_path, "-q"], capsys)
    assert " logit " in out


def test_occlusion_patch_covering_the_input_warns(files, tmp_path, capsys):
    code, _, err = cli(["explain", files["tiny"], files["img"], "-m", "occlusion", "--patch", "64",
                        "--out", tmp_path, "-q"], capsys)
    assert code == 0 and "covers the whole 32x32 input" in err


@pytest.mark.parametrize("suffix,needle", [(".pt", "onnxviz convert pytorch"),
                                           (".pth", "onnxviz convert pytorch"),
                                           (".keras", "onnxviz convert keras"),
                                           (".h5", "onnxviz convert keras"),
                                           (".pb", "tf2onnx"), (".tflite", "tf2onnx"),
                                           (".mlmodel", "convert the source model")])
def test_framework_files_get_the_converter(suffix, needle, tmp_path, files, capsys):
    model = tmp_path / f"net{suffix}"
    model.write_bytes(b"PK\x03\x04 not onnx at all")
    code, _, err = cli(["predict", model, files["img"]], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_url_keeps_its_slashes(files, capsys):
    code, _, err = cli(["predict", files["tiny"], "https://example.org/cat.jpg"], capsys)
    assert code == 2 and "https://example.org/cat.jpg is a URL" in err


def test_report_pictures_of_small_models_are_enlarged(files, tmp_path, capsys):
    import base64
    import re

    cli(["report", files["tiny"], files["img"], "-m", "gradcam", "--out", tmp_path], capsys)
    page = (tmp_path / "report.html").read_text()
    widths = []
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
        if img.shape[0] > 30:  # the colour bar is a thin strip
            widths.append(img.shape[1])
    assert widths and min(widths) >= 128, widths
    assert "gradient of the class score" in page or "what" in page  # method descriptions
