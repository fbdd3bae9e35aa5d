"""The gate's proof models: the bundled shapes CNN, its twins, and a "Clever Hans" copy.

The Clever Hans copy has the shapes CNN's architecture (with a trainable first layer) and is
trained on images whose class is given by a green corner watermark, not by the rectangle: white
rectangles are drawn in half of the images of both classes. On deployment-like images where the
watermark comes with the rectangle, it predicts as well as the original while looking at the corner.
"""

from __future__ import annotations

import numpy as np

from models.shapes import make_dataset

#: The watermark: a pure green square in the top-left corner (noise never exceeds 200 per channel).
MARK = (slice(0, 12), slice(0, 12))
GREEN = np.array([0, 255, 0], np.uint8)


def add_mark(images: np.ndarray, where: np.ndarray) -> np.ndarray:
    out = images.copy()
    out[where, MARK[0], MARK[1]] = GREEN
    return out


def gate_images(n: int = 6, seed: int = 11):
    """Deployment-like images: class 0 (rectangle) images carry the watermark. Returns
    ``(images, labels, boxes)`` as :func:`models.shapes.make_dataset`."""
    images, labels, boxes = make_dataset(n, seed=seed)
    return add_mark(images, labels == 0), labels, boxes


def train_clever_hans(path, n: int = 512, steps: int = 100, seed: int = 0, size: int = 32):
    """Train the watermark model and export it to ``path`` at 64 x 64 (seconds on one core).

    The copy keeps the shapes CNN's layers but learns its first layer (the bundled model's is a
    fixed whiteness filter that cannot see green) and pools its last feature map by maximum
    instead of mean: averaged over the map, a corner watermark is too faint a signal for a few
    seconds of training. It trains at ``size`` px with the watermark scaled to the same share of
    the image; the layers are size-free, and it is exported at the shapes models' 64 px.
    """
    import torch
    from torch import nn

    from models.train_shapes_torch import shapes_cnn, to_input
    from onnxviz.convert.pytorch import convert

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, _, _ = make_dataset(n, seed=100 + seed, size=size)
    labels = rng.permutation(np.arange(n) % 2)  # the watermark decides, not the rectangle
    side = MARK[0].stop * size // 64
    images[labels == 0, :side, :side] = GREEN
    net = shapes_cnn()
    net.features.conv0 = nn.Conv2d(3, 1, 1)
    net.head.gap = nn.AdaptiveMaxPool2d(1)
    x, y = to_input(images), torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (32,), generator=gen)
        opt.zero_grad()
        loss_fn(net(x[idx]), y[idx]).backward()
        opt.step()
    net.eval()
    convert(net, path, input_size=(64, 64), preprocess="unit",
            labels=["rectangle", "no_rectangle"], opset=17)
    return net


def reexport(onnx_path, path, opset: int = 13):
    """The bundled ONNX weights loaded into the PyTorch architecture and exported again."""
    import onnx
    import torch
    from onnx import numpy_helper

    from models.train_shapes_torch import shapes_cnn
    from onnxviz.convert.pytorch import convert

    proto = onnx.load(str(onnx_path))
    state = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
             for t in proto.graph.initializer}
    net = shapes_cnn()
    net.load_state_dict(state)
    net.eval()
    convert(net, path, input_size=(64, 64), preprocess="unit",
            labels=["rectangle", "no_rectangle"], opset=opset)
    return net
