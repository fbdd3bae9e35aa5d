"""``onnxviz serve`` on the command line (without the extra, bad flags) and the server's pieces
that need no server: image headers, request parameters, caps."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from onnxviz.cli import main
from onnxviz.cli.serve import served_methods
from onnxviz.errors import ImageError, OptionError
from onnxviz.serve.engine import model_name
from onnxviz.serve.images import header_size
from onnxviz.serve.limits import parse_caps
from onnxviz.serve.params import job_of
from tests.serve.helpers import REPO

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("starlette", "uvicorn", "prometheus_client"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
from onnxviz.cli import main
sys.exit(main(["serve", sys.argv[1]]))
"""


def test_without_the_extra_one_line_and_exit_2(shapes_path):
    r = subprocess.run([sys.executable, "-c", BLOCK, str(shapes_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "pip install 'onnxviz[serve]'" in lines[0]


@pytest.mark.parametrize("flags, words", [
    (["--token-file", "/nonexistent/token"], "--token-file"),
    (["--cap", "patch=3"], "--cap expects OPTION=VALUE"),
    (["--cap", "stride=x"], "expects a number"),
    (["--max-batch", "0"], "--max-batch must be >= 1"),
    (["--timeout", "0"], "--timeout"),
    (["--port", "70000"], "--port"),
    (["--method", "gradcan"], "unknown method"),
])
def test_bad_flags_one_line_exit_2(flags, words, shapes_path, capsys):
    assert main(["serve", str(shapes_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_two_models_with_one_name(shapes_path, capsys):
    assert main(["serve", str(shapes_path), f"shapes_cnn={shapes_path}"]) == 2
    assert "two models named 'shapes_cnn'" in capsys.readouterr().err


def test_model_names():
    assert model_name("models/resnet-50.v1.onnx") == ("resnet-50.v1", "models/resnet-50.v1.onnx")
    assert model_name("cat=models/a=b.onnx") == ("cat", "models/a=b.onnx")
    with pytest.raises(OptionError, match="NAME=PATH"):
        model_name("my model=x.onnx")


def test_served_methods():
    assert served_methods(None) == ["gradcam"]
    assert served_methods(["lime,gradcam"]) == ["lime", "gradcam"]
    every = served_methods(["all"])
    assert every[0] == "gradcam" and "occlusion" in every and len(set(every)) == len(every)


@pytest.mark.parametrize("ext, flags", [(".png", []), (".jpg", []),
                                        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                                        (".bmp", []), (".webp", []),
                                        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])])
def test_header_size_matches_the_decoder(ext, flags):
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    ok, buf = cv2.imencode(ext, img, flags)
    assert ok
    assert header_size(buf.tobytes()) == (53, 37)


@pytest.mark.parametrize("data, words", [
    (b"GIF89a....", "not a PNG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", "cut short"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "frame header"),
])
def test_header_size_refuses(data, words):
    with pytest.raises(ImageError, match=words):
        header_size(data)


def test_parameters_convert_like_the_command_line():
    job = job_of({"method": "occlusion", "patch": [16, 16], "stride": 8, "fill": 0,
                  "layer": None, "outputs": "heatmap"}, ["gradcam", "occlusion"], parse_caps([]))
    assert job.method == "occlusion"
    assert job.kwargs == {"patch": (16, 16), "stride": 8, "fill": 0}
    assert job.outputs == ("heatmap",)
    same = job_of({"method": "occlusion", "fill": "0", "patch": "16,16", "stride": "8"},
                  ["occlusion"], parse_caps([]))
    assert same.key == job.key
    with pytest.raises(OptionError, match="over HTTP"):
        job_of({"method": "lime", "progress": False}, ["lime"], parse_caps([]))
    with pytest.raises(OptionError, match="stride must be at least 4"):
        job_of({"method": "occlusion", "stride": [8, 2]}, ["occlusion"], parse_caps([]))
    assert job_of({"method": "occlusion", "stride": 2}, ["occlusion"],
                  parse_caps(["stride=2"])).kwargs == {"stride": 2}
