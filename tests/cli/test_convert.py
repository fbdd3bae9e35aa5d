"""``onnxviz convert``: the converters as subcommands; help without the frameworks, and a missing
framework as one line naming the extra to install, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest
from viz_cli_helpers import LABELS, write_tiny_model

import onnxviz as ov
from onnxviz.cli import main
from onnxviz.convert import CONVERTERS

#: The module each converter needs, blocked to play an installation without it, and its extra.
FRAMEWORKS = {"pytorch": ("torch", "pytorch"), "keras": ("tensorflow", "keras"),
              "quantize": ("onnxconverter_common", "quantize")}


def cli(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse (--help)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def block(monkeypatch, *modules):
    """Make ``import module`` fail as if it were not installed (``find_spec`` returns None)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_convert_help_lists_every_converter_and_examples(capsys):
    code, out, _ = cli(["convert", "--help"], capsys)
    assert code == 0
    for name in CONVERTERS:
        assert f"    {name} " in out
        assert f"onnxviz convert {name} " in out  # an example each
    assert "pip install 'onnxviz[pytorch]'" in out


def test_convert_alone_prints_the_converters_and_exits_2(capsys):
    code, _, err = cli(["convert"], capsys)
    assert code == 2 and "pytorch" in err and "quantize" in err


@pytest.mark.parametrize("name", CONVERTERS)
def test_help_works_without_any_framework(name, monkeypatch, capsys):
    block(monkeypatch, "torch", "tensorflow", "keras", "tf2onnx", "onnxconverter_common")
    code, out, _ = cli(["convert", name, "--help"], capsys)
    assert code == 0 and out.startswith(f"usage: onnxviz convert {name}")
    assert out.count(f"onnxviz convert {name} ") >= 3  # usage line and two examples


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_a_missing_framework_is_one_line_with_the_install_command(name, monkeypatch, tmp_path,
                                                                   capsys):
    module, extra = FRAMEWORKS[name]
    block(monkeypatch, module)
    tiny = write_tiny_model(tmp_path / "tiny.onnx")
    argv = {"pytorch": ["mynets:build", "-o", tmp_path / "x.onnx"],
            "keras": [tmp_path / "m.keras", "-o", tmp_path / "x.onnx"],
            "quantize": [tiny, "-o", tmp_path / "x.onnx", "--form", "fp16"]}[name]
    code, out, err = cli(["convert", name, *argv], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("onnxviz: error: ") and f"pip install 'onnxviz[{extra}]'" in err
    assert not (tmp_path / "x.onnx").exists()


def test_int8_forms_need_no_extra(monkeypatch, tmp_path, capsys):
    block(monkeypatch, "onnxconverter_common")
    tiny = write_tiny_model(tmp_path / "tiny.onnx")
    code, out, err = cli(["convert", "quantize", tiny, "-o", tmp_path / "q.onnx", "--form",
                          "dynamic"], capsys)
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'q.onnx'}"
    assert ov.load(tmp_path / "q.onnx").labels == ov.load(tiny).labels


def test_metadata_stamps_labels_and_preprocessing(tmp_path, capsys):
    tiny = write_tiny_model(tmp_path / "tiny.onnx")
    (tmp_path / "names.txt").write_text("\n".join(f"c{i}" for i in range(len(LABELS))) + "\n")
    code, out, err = cli(["convert", "metadata", tiny, "--labels", tmp_path / "names.txt",
                          "--preprocess", "unit", "-o", tmp_path / "stamped.onnx"], capsys)
    assert code == 0, err
    assert out.strip() == f"preprocess: {{'preset': 'unit'}}; labels: {len(LABELS)}"
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "stamped.onnx")).metadata_props}
    assert json.loads(props["onnxviz.labels"]) == [f"c{i}" for i in range(len(LABELS))]
    code, _, err = cli(["convert", "metadata", tmp_path / "missing.onnx"], capsys)
    assert code == 2 and "no such ONNX file" in err and len(err.strip().splitlines()) == 1


def test_python_dash_m_is_the_same_command(tmp_path):
    tiny = write_tiny_model(tmp_path / "tiny.onnx")
    done = subprocess.run([sys.executable, "-m", "onnxviz.convert.metadata", str(tiny),
                           "--preprocess", "raw"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("preprocess: {'preset': 'raw'}")
