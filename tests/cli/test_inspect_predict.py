"""`onnxviz inspect` and `onnxviz predict`: text, JSON, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.cli import main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_text(capsys, fixtures_dir):
    code, out, err = _run(capsys, "inspect", fixtures_dir / "tf2onnx_cifar_small.onnx")
    assert code == 0
    assert "producer:       tf2onnx 1.8.2" in out
    assert "input:          x:0 NHWC 32x32, 3 channel(s)" in out
    assert "preprocessing:  unit (from guess)" in out and "score output:   Identity:0" in out
    assert "conv2d_1 " in out and "Relu" in out
    assert "guessing preprocessing" in err  # the guess is a one-line warning


def test_inspect_json(capsys, fixtures_dir):
    code, out, _ = _run(capsys, "inspect", fixtures_dir / "matlab_mnist_tansig.onnx", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["input"] == {"name": "input", "layout": "NCHW", "size": [1, 784], "channels": 1,
                             "dtype": "float32", "dynamic_size": False, "flat_size": [28, 28]}
    assert info["preprocessing"]["name"] == "raw" and info["preprocessing"]["source"] == "matlab"
    assert info["score_output"] == "softmax_3_Flatten" and info["prob_output"] == "softmax_3"
    assert info["num_classes"] == 10 and info["opset"] >= 13
    assert [lay["name"] for lay in info["layers"]][:3] == ["input_Sub", "Operation_1", "tanh_1"]


def test_predict_effnet_json(capsys, effnet_path):
    code, out, _ = _run(capsys, "predict", effnet_path, "skimage:chelsea", "skimage:coffee",
                        "--json")
    res = json.loads(out)
    assert code == 0 and [r["image"] for r in res] == ["skimage:chelsea", "skimage:coffee"]
    top = res[0]["top"]
    assert len(top) == 5 and 281 <= top[0]["index"] <= 285
    m = ov.load(effnet_path)
    want = m.predict("skimage:chelsea")
    assert [t["label"] for t in top] == [p.label for p in want]
    np.testing.assert_allclose([t["probability"] for t in top], [p.probability for p in want],
                               rtol=1e-6)


def test_predict_text_and_options(capsys, fixtures_dir, tmp_path):
    (tmp_path / "labels.txt").write_text("\n".join(f"digit {i}" for i in range(10)))
    code, out, _ = _run(capsys, "predict", fixtures_dir / "pytorch_mnist_convnet_maxpool.onnx",
                        "skimage:camera", "--top", "2", "--labels", tmp_path / "labels.txt",
                        "--preprocess", "unit")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "skimage:camera" and len(lines) == 3
    assert "% " in lines[1] and "digit " in lines[1]


def test_predict_regression(capsys, fixtures_dir):
    code, out, _ = _run(capsys, "predict", fixtures_dir / "matlab_rul_cnn.onnx", "skimage:camera")
    assert code == 0 and "1. output = " in out


@pytest.mark.parametrize("argv, match", [
    (["inspect", "no/such/model.onnx"], "model file not found"),
    (["predict", "{fx}/matlab_rul_cnn.onnx", "missing.png"], "image file not found"),
    (["predict", "{fx}/matlab_rul_cnn.onnx", "skimage:camera", "--top", "0"], "--top"),
    (["inspect", "{fx}/matlab_rul_cnn.onnx", "--preprocess", "imagenett"], "unknown preprocessing"),
])
def test_user_errors_are_one_line_exit_2(capsys, fixtures_dir, argv, match):
    code, out, err = _run(capsys, *[a.format(fx=fixtures_dir) for a in argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("onnxviz: error: ") and match in err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ov.ModelError):
        main(["--debug", "inspect", "no/such/model.onnx"])
    with pytest.raises(ov.ModelError):
        main(["inspect", "no/such/model.onnx", "--debug"])


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "inspect" in capsys.readouterr().err


def test_console_entry_point(fixtures_dir):
    res = subprocess.run([sys.executable, "-m", "onnxviz.cli", "predict",
                          str(fixtures_dir / "matlab_rul_cnn.onnx"), "skimage:camera", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["top"][0]["index"] == 0
