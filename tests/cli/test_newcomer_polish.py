"""A newcomer's polish (issue 20, 4): each case was tried from the README as a new user would, and
reproduced on main before it was fixed."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from viz_cli_helpers import LABELS, cli, photo, write_png, write_tiny_model

import onnxviz as ov
from onnxviz.cli import SUBCOMMANDS, build_parser
from onnxviz.explainers import registry
from onnxviz.explainers.ranges import Words


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("polish")
    return {"tiny": write_tiny_model(d / "tiny.onnx"),
            "img": write_png(d / "pic.png", photo(300, 451))}


# ---- repr and save ---------------------------------------------------------------------------

def test_repr_is_one_line(files):
    m = ov.load(files["tiny"])
    e = ov.explain(m, str(files["img"]), method="gradcam")
    text = repr(e)
    assert "\n" not in text and len(text) < 200, text
    for part in ("gradcam", repr(e.label), "logit", "32x32"):
        assert part in text, text
    two = ov.explain(m, [str(files["img"])] * 2, method="saliency")
    assert "\n" not in repr(two) and repr(two).count("<Explanation") == 2


def test_repr_shows_flags():
    e = ov.Explanation(heatmap=np.zeros((4, 4), np.float32), raw=None, target=1, label="b",
                       score=float("nan"), method="saliency",
                       extras={"nonfinite": "the score is nan"})
    assert repr(e).endswith(", nonfinite: the score is nan>")


def _caption_lines(pic: np.ndarray, photo_h: int) -> int:
    band = pic.shape[0] - photo_h
    assert band % 20 == 0, pic.shape
    return band // 20


def test_save_keeps_the_photo_and_the_whole_caption(files, tmp_path):
    m = ov.load(files["tiny"])
    e = ov.explain(m, str(files["img"]), method="gradcam")
    out = cv2.imread(str(e.save(tmp_path / "a.png")))
    assert out.shape[1] == 451  # the photo's width, not the model's 32 px (scaled to 224)
    assert _caption_lines(out, 300) == 1
    # a label too long for one line: the caption wraps instead of ending in "~"
    long = ov.load(files["tiny"], labels=[f"{n} " + "with a very long class name " * 4
                                          for n in LABELS])
    e = ov.explain(long, str(files["img"]), method="gradcam")
    out = cv2.imread(str(e.save(tmp_path / "b.png")))
    assert out.shape[1] == 451 and _caption_lines(out, 300) >= 2
    # an array keeps its size too; the overlay is the CLI's (heatmap resized to the photo)
    px = photo(300, 451)
    e = ov.explain(m, px, method="gradcam")
    out = cv2.imread(str(e.save(tmp_path / "c.png")))[20:, :, ::-1]
    expected = ov.viz.overlay(px, e.heatmap, alpha=0.4, cmap="jet", clip_percent=1.0)
    assert out.shape == expected.shape and np.abs(out.astype(int) - expected).max() <= 1


# ---- the CLI ---------------------------------------------------------------------------------

def test_mistyped_flag_suggests_and_points_to_the_command_help(files, capsys):
    code, _, err = cli(["explain", files["tiny"], files["img"], "-m", "occlusion",
                        "--stirde", "8"], capsys)
    assert code == 2
    assert "did you mean --stride?" in err and "onnxviz explain --help" in err
    assert err.count("\n") == 1, err
    code, _, err = cli(["convert", "pytorch", "x.py", "-o", "y.onnx", "--opest", "17"], capsys)
    assert code == 2 and "did you mean --opset?" in err and "onnxviz convert pytorch --help" in err


def _parsers():
    """Every (sub)command's parser, by its prog."""
    out, todo = {}, [build_parser()]
    while todo:
        p = todo.pop()
        out[p.prog] = p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                todo.extend(a.choices.values())
    return out


def test_every_help_lists_the_choices_of_word_options():
    """Each word-valued option lists its allowed values in every command's --help, as the
    registry declares them (so they cannot drift)."""
    parsers = _parsers()
    assert {f"onnxviz {c}" for c in SUBCOMMANDS} <= set(parsers)
    words = {}
    for m in registry.methods():
        cls = registry.get(m)
        for opt in cls.options():
            spec = cls.option_specs().get(opt)
            if isinstance(spec, Words):
                words.setdefault(opt, set()).update(spec.choices)
    assert {"reduce", "rule", "nt_type", "segmentation", "weights", "head_fusion", "upsample",
            "edges", "score", "dense_rule", "first_rule"} <= set(words)
    checked = 0
    for prog, p in parsers.items():
        text = " ".join(p.format_help().split())
        for a in p._actions:
            if a.dest.startswith("opt_") and a.dest[4:] in words:
                helptext = " ".join((a.help or "").split())
                for choice in words[a.dest[4:]]:
                    assert choice in helptext, (prog, a.option_strings, choice)
                checked += 1
            if a.choices and not isinstance(a, argparse._SubParsersAction):
                for choice in a.choices:  # argparse's own choices are shown too
                    assert str(choice) in text, (prog, a.option_strings, choice)
    assert checked >= 3 * len(words)  # explain, report and bench at least


def test_help_of_convert_pytorch_says_defaults(capsys):
    code, out, _ = cli(["convert", "pytorch", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    for flag, default in (("--input-size", "224 224"), ("--channels", "default 3"),
                          ("--opset", "default 17")):
        assert flag in text and default in text, flag
    assert "'imagenet'" in text


def test_baseline_help_does_not_claim_only_numbers(capsys):
    _, out, _ = cli(["explain", "--help"], capsys)
    text = " ".join(out.split())
    block = text[text.index("--baseline BASELINE used by"):][:900]
    assert "one of zero, black, blur" in block and ".npy array" in block


def test_num_samples_range_per_method_in_help_and_docs(repo_root, capsys):
    _, out, _ = cli(["explain", "--help"], capsys)
    text = " ".join(out.split())
    assert "lime: an integer in [1, 100_000]; kernelshap: an integer in [3, 100_000]" in text
    docs = (repo_root / "docs" / "cli.md").read_text()
    assert "kernelshap: an integer in [3, 100_000]" in docs


def test_convert_pytorch_checks_arguments_before_the_slow_work(files, tmp_path, capsys):
    out = tmp_path / "net.onnx"
    # the labels file is wrong: said before the (missing) module is imported or anything exported
    code, _, err = cli(["convert", "pytorch", "no_such_module_xyz:build", "-o", out,
                        "--labels", tmp_path / "missing.txt"], capsys)
    assert code == 2 and "labels" in err and "missing.txt" in err and "no_such_module" not in err
    code, _, err = cli(["convert", "pytorch", "no_such_module_xyz:build", "-o", out,
                        "--opset", "99"], capsys)
    assert code == 2 and "--opset" in err
    assert not out.exists()


def test_convert_pytorch_labels_imagenet(tmp_path, capsys):
    pytest.importorskip("torch")
    net = tmp_path / "net.py"
    net.write_text("import torch\n"
                   "def build():\n"
                   "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),\n"
                   "        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),"
                   " torch.nn.Linear(4, 1000))\n")
    out = tmp_path / "net.onnx"
    code, stdout, err = cli(["convert", "pytorch", f"{net}:build", "-o", out, "--input-size",
                             "32", "32", "--labels", "imagenet"], capsys)
    assert code == 0, err
    import onnx

    from onnxviz.convert.metadata import read_metadata

    stamped = read_metadata(onnx.load(str(out)))["labels"]
    assert len(stamped) == 1000 and stamped[285] == "Egyptian cat"
    assert ov.load(out).label_of(285) == "Egyptian cat"


def test_warnings_from_other_packages_say_where_they_come_from_once(capsys):
    from onnxviz.cli import _SHOWN, _one_line_warning

    _SHOWN.clear()
    torch_file = "/x/lib/python3.11/site-packages/torch/onnx/utils.py"
    for _ in range(3):
        _one_line_warning(UserWarning("Constant folding:  not applied"), UserWarning,
                          torch_file, 1)
    _one_line_warning(UserWarning("ours"), UserWarning, "/x/onnxviz/model/core.py", 1)
    err = capsys.readouterr().err.splitlines()
    assert err == ["onnxviz: warning from torch: Constant folding: not applied",
                   "onnxviz: warning: ours"]


def test_demo_says_what_it_skips_and_shows_progress(files, tmp_path):
    r = subprocess.run([sys.executable, "-m", "onnxviz.cli", "demo", "--model", str(files["tiny"]),
                        "--out", str(tmp_path / "d")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    n = len(ov.METHODS)
    tiny = ov.load(files["tiny"])
    ran = [m for m in ov.METHODS if registry.get(m).applies_to(tiny) is None]
    assert len(ran) == n - 4  # the two attention methods, D-RISE and ODAM (detectors only)
    assert f"running {len(ran)} of {n} methods" in r.stderr
    assert "skipped attention_rollout: this model has no attention" in r.stderr
    assert "skipped drise: drise explains the boxes of object detectors" in r.stderr
    assert f"{len(ran)}/{len(ran)} " in r.stderr and "1/" in r.stderr
    assert r.stdout.strip().endswith("report.html")
    quiet = subprocess.run([sys.executable, "-m", "onnxviz.cli", "demo", "--model",
                            str(files["tiny"]), "--out", str(tmp_path / "q"), "-q", "-m",
                            "gradcam"], capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0 and "onnxviz demo:" not in quiet.stderr


def test_json_record_unchanged_by_repr(files, capsys):
    """The JSON record keeps its keys (repr is for people only)."""
    code, out, err = cli(["explain", files["tiny"], files["img"], "-m", "gradcam", "--json",
                          "--out", files["img"].parent / "o"], capsys)
    assert code == 0, err
    rec = json.loads(out.splitlines()[0])
    assert {"image", "method", "target", "label", "score", "params", "timings",
            "extras"} <= set(rec)
