"""converters.pytorch: exported models give torch's logits through onnxviz, metadata round-trips."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import onnxviz as ov  # noqa: E402
from onnxviz.convert import read_metadata  # noqa: E402
from onnxviz.convert.pytorch import convert, load_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["ant", "bee", "cat", "dog", "eel"]
TOL = 1e-4


def tiny_net(seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU-pool, a TF-style asymmetric ZeroPad2d, Conv-ReLU, GAP, Linear; BN stats random."""
    torch.manual_seed(seed)
    net = nn.Sequential(OrderedDict(
        features=nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, 8, 3, padding=1), bn1=nn.BatchNorm2d(8), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
            pad=nn.ZeroPad2d((0, 1, 0, 1)), conv2=nn.Conv2d(8, 16, 3, stride=2), relu2=nn.ReLU6(),
        )),
        gap=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(16, len(LABELS)),
    ))
    with torch.no_grad():
        net.features.bn1.running_mean.uniform_(-0.5, 0.5)
        net.features.bn1.running_var.uniform_(0.5, 2.0)
    return net.eval()


def torch_logits(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_logits_match_torch_through_onnxviz(tmp_path, images, dynamo):
    net = tiny_net()
    path = convert(net, tmp_path / "tiny.onnx", input_size=(32, 32), preprocess="imagenet", labels=LABELS,
                   dynamo=dynamo) and tmp_path / "tiny.onnx"
    m = ov.load(path)
    assert m.input.layout == "NCHW" and m.input.size == (32, 32)
    x = m.preprocess(list(images))
    got = m.forward(x)
    want = torch_logits(net, x)
    assert got.shape == (3, len(LABELS))
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    # the batch axis is dynamic: one image at a time gives the same rows
    for i in range(3):
        np.testing.assert_allclose(m.forward(x[i : i + 1]), want[i : i + 1], atol=TOL, rtol=0)


def test_metadata_round_trips(tmp_path):
    custom = {"mean": [127, 127, 127], "std": [128, 128, 128], "scale": 1, "channel_order": "BGR"}
    proto = convert(tiny_net(), tmp_path / "m.onnx", input_size=(32, 32), preprocess=custom, labels=LABELS)
    meta = read_metadata(onnx.load(tmp_path / "m.onnx"))
    assert meta == read_metadata(proto)
    assert meta["labels"] == LABELS
    assert meta["preprocess"] == {"mean": [127.0] * 3, "std": [128.0] * 3, "scale": 1.0, "channel_order": "BGR"}
    m = ov.load(tmp_path / "m.onnx")
    assert m.labels == LABELS and m.preprocessing.source == "metadata"
    # onnxviz applies exactly the recorded formula: x = (pixels[..., BGR] * scale - mean) / std
    pixels = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    want = ((pixels[..., ::-1].astype(np.float32) - 127) / 128).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(m.preprocess(list(pixels)), want, atol=1e-6)


def test_layers_keep_module_paths_and_constants_are_folded(tmp_path):
    proto = convert(tiny_net(), tmp_path / "m.onnx", input_size=(32, 32))
    names = [n.name for n in proto.graph.node]
    assert "/features/conv1/Conv" in names and "/features/conv2/Conv" in names
    # ZeroPad2d's pads are computed by Constant/ConstantOfShape/Slice chains in the raw export
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Constant", "ConstantOfShape", "Slice"}, ops
    pad = next(n for n in proto.graph.node if n.op_type == "Pad")
    assert pad.input[1] in {t.name for t in proto.graph.initializer}


def test_load_spec_and_errors(tmp_path):
    (tmp_path / "netdef.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))\n\n"
        "not_a_module = 3\n"
    )
    assert isinstance(load_spec(f"{tmp_path / 'netdef.py'}:make"), torch.nn.Module)
    from onnxviz.convert import ConverterError

    with pytest.raises(ConverterError, match="no attribute missing"):
        load_spec(f"{tmp_path / 'netdef.py'}:missing")
    with pytest.raises(ConverterError, match="not a torch.nn.Module"):
        load_spec(f"{tmp_path / 'netdef.py'}:not_a_module")
    with pytest.raises(ConverterError, match="cannot import"):
        load_spec("no_such_package_xyz.nets:make")


def test_cli_on_a_module_factory_spec(tmp_path, images):
    (tmp_path / "mynets.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_pytorch_converter import tiny_net\n\n"
        "def build():\n    return tiny_net(seed=3)\n"
    )
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "onnxviz.convert.pytorch", "mynets:build", "-o", "out.onnx",
           "--input-size", "32", "32", "--preprocess", "unit", "--labels", "labels.txt"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    m = ov.load(tmp_path / "out.onnx")
    assert m.labels == LABELS and m.preprocessing.name == "unit"
    x = m.preprocess(list(images))
    np.testing.assert_allclose(m.forward(x), torch_logits(tiny_net(seed=3), x), atol=TOL, rtol=0)

    bad = subprocess.run([*cmd[:3], "mynets:nope", "-o", "x.onnx"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "no attribute nope" in bad.stderr
