"""Trains ``onnxviz/data/models/shapes_cnn.onnx``: a small CNN on the synthetic shapes data (``models/shapes.py``).

A fixed per-pixel 1x1 Conv+LeakyReLU, ``leaky_relu(10 * (r + g + b) - 26.8, 0.01)`` on [0, 1]
inputs, which is 3.2 on pure white and a small negative value on the noise (at most
3 * 200 / 255 = 2.35 before the threshold): the rest of the network sees white pixels 100x more
strongly than noise, so every explanation's ground truth is the rectangle itself (a trained first
layer learns the rectangle's outline instead, and plain gradients then peak just outside the box).
Then three 3x3 Conv+ReLU blocks (two 2x2 max-pools, so the last feature map is 16x16), then global average
pooling and one Linear layer: the GAP->dense head that Class Activation Mapping needs
(Zhou et al., https://arxiv.org/abs/1512.04150). Input NCHW, pixels scaled to [0, 1] ("unit").
Trained on CPU in a couple of minutes, exported with ``onnxviz.convert.pytorch``.

Run from the repository root::

    python -m models.train_shapes_torch
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.shapes import LABELS, LEAK, SIZE, WHITENESS_GAIN, WHITENESS_THRESHOLD, make_dataset

HERE = Path(__file__).resolve().parent
ONNX_PATH = HERE.parent / "onnxviz" / "data" / "models" / "shapes_cnn.onnx"
TRAIN_SEED, VAL_SEED, TEST_SEED = 1, 2, 3
N_TRAIN, N_TEST = 8000, 2000


def shapes_cnn() -> nn.Module:
    """The untrained network; module names become the ONNX layer names (``/features/conv3/Conv``)."""
    features = nn.Sequential(
        OrderedDict(
            conv0=_whiteness(),
            relu0=nn.LeakyReLU(LEAK),
            conv1=nn.Conv2d(1, 16, 3, padding=1),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(16, 32, 3, padding=1),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            conv3=nn.Conv2d(32, 32, 3, padding=1),
            relu3=nn.ReLU(),
        )
    )
    head = nn.Sequential(OrderedDict(gap=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(32, len(LABELS))))
    return nn.Sequential(OrderedDict(features=features, head=head))


def _whiteness() -> nn.Conv2d:
    """The frozen 1x1 convolution ``10 * (r + g + b) - 26.8`` (threshold between noise and white)."""
    conv = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(WHITENESS_GAIN)
        conv.bias.fill_(-WHITENESS_GAIN * WHITENESS_THRESHOLD)
    conv.requires_grad_(False)
    return conv


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1] (the ``unit`` preset)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0)


def train(epochs: int = 4, batch: int = 64, seed: int = 0, log=print) -> nn.Module:
    """Trains with Adam on a fixed set of ``N_TRAIN`` images; returns the eval-mode network."""
    torch.manual_seed(seed)
    images, labels, _ = make_dataset(N_TRAIN, seed=TRAIN_SEED)
    x, y = to_input(images), torch.from_numpy(labels)
    net = shapes_cnn()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (N_TRAIN // batch))
    return fit(net, opt, sched, x, y, epochs, batch, log)


def fit(net, opt, sched, x, y, epochs: int, batch: int, log=print) -> nn.Module:
    """The training loop shared by the shapes models: shuffled mini-batches of ``x``, cross-entropy,
    one scheduler step per batch, validation accuracy per epoch; returns the eval-mode network."""
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(N_TRAIN)
        total = 0.0
        for start in range(0, N_TRAIN - batch + 1, batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        log(f"epoch {epoch + 1}: loss {total / (N_TRAIN // batch):.4f}, val acc {accuracy(net, VAL_SEED):.4f}")
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, seed: int, n: int = N_TEST) -> float:
    """Accuracy on ``n`` fresh images drawn with ``seed``."""
    net.eval()
    images, labels, _ = make_dataset(n, seed=seed)
    pred = net(to_input(images)).argmax(1).numpy()
    return float((pred == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ONNX_PATH)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    net = train(epochs=args.epochs)
    print(f"trained in {time.perf_counter() - start:.0f} s; held-out accuracy (seed {TEST_SEED}, "
          f"{N_TEST} images): {accuracy(net, TEST_SEED):.4f}")
    from onnxviz.convert.pytorch import convert

    convert(net, args.output, input_size=(SIZE, SIZE), preprocess="unit", labels=list(LABELS), opset=17)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
