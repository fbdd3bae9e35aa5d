"""int8 and float16 forms of two models, made once per session with ``onnxviz.convert.quantize``:
the bundled shapes CNN and a timm ResNet-18 (random weights, 64 x 64 input)."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
FORMS = ("dynamic", "qdq", "qoperator", "fp16", "fp16-io32", "mixed")
RESNET_SIZE = 64


def _repo(name: str):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


def _make_forms(src: Path, folder: Path, images) -> dict:
    pytest.importorskip("onnxconverter_common")
    quantize = _repo("onnxviz.convert.quantize").quantize
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    files = {"float32": src}
    for form in FORMS:
        files[form] = folder / f"{form}.onnx"
        quantize(src, files[form], form, images=images)
    return files


@pytest.fixture(scope="session")
def shapes_data():
    """24 shapes images (about half with a rectangle), labels and boxes."""
    return _repo("models.shapes").make_dataset(24, seed=11)


@pytest.fixture(scope="session")
def shapes_files(tmp_path_factory, shapes_data):
    """{form: path} for onnxviz/data/models/shapes_cnn.onnx, calibrated on 16 shapes images."""
    folder = tmp_path_factory.mktemp("shapes_forms")
    images = _repo("models.shapes").make_dataset(16, seed=3)[0]
    src = ROOT / "onnxviz" / "data" / "models" / "shapes_cnn.onnx"
    return _make_forms(src, folder, list(images))


@pytest.fixture(scope="session")
def photos():
    """Four skimage photos at the ResNet's input size (uint8 RGB)."""
    import cv2
    import skimage.data

    ims = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(),
           skimage.data.rocket()]
    return [cv2.resize(im, (RESNET_SIZE, RESNET_SIZE), interpolation=cv2.INTER_AREA)
            for im in ims]


@pytest.fixture(scope="session")
def resnet_files(tmp_path_factory, photos):
    """{form: path} for a timm ResNet-18 with random weights (torch.onnx.export, opset 17)."""
    torch = pytest.importorskip("torch")
    from tests.zoo.timm_shim import import_timm

    timm = import_timm()
    from onnxviz.convert._metadata import write_metadata

    folder = tmp_path_factory.mktemp("resnet_forms")
    torch.manual_seed(0)
    net = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    src = folder / "float32.onnx"
    x = torch.randn(1, 3, RESNET_SIZE, RESNET_SIZE)
    torch.onnx.export(net, x, str(src), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    proto = write_metadata(onnx.load(str(src)), "imagenet")
    onnx.save(proto, str(src))
    return _make_forms(src, folder, photos)


@pytest.fixture(scope="session")
def files(shapes_files, resnet_files):
    """``files("shapes" | "resnet")`` -> {form: path}."""
    return {"shapes": shapes_files, "resnet": resnet_files}.__getitem__


def file_outputs(path, x: np.ndarray) -> np.ndarray:
    """The file's own first output for each image of model-layout input ``x`` (cast to the
    file's input type, one image per run), by a plain ONNX Runtime session, as float32.

    QuantizeLinear/DequantizeLinear pairs run as the QDQ format defines them (dequantize, float
    op, quantize: ``session.disable_quant_qdq``), not fused into int8 kernels: onnxruntime 1.32's
    fused kernels give the shapes CNN's QDQ twin logits of -4.6/6.3 where the graph gives
    33.1/-19.7 (a white rectangle read as none)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    return np.concatenate([np.asarray(sess.run(None, {inp.name: x[k:k + 1].astype(dtype)})[0],
                                      np.float32) for k in range(len(x))])
