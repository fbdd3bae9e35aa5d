"""Trains the bundled detector and segmenter on the synthetic scenes (``models/scenes.py``).

- ``shapes_detector.onnx``: a YOLO-style anchor-free detector. Four stride-2 3x3 Conv+ReLU
  stages, then a head of 3x3 Conv+ReLU and a 1x1 Conv at strides 8 and 16 (12x12 and 6x6 anchors
  at 96 px). Each anchor predicts its distances to the box's four sides (softplus x stride, as
  FCOS and YOLOv8 do) and three class scores (sigmoid); the graph decodes them to the ``yolov8``
  layout, ``[N, 4 + 3, 180]``: ``cx, cy, w, h`` in input pixels, then the class scores. Trained
  with FCOS's centre sampling (an anchor within 1.5 strides of a box's centre and inside it is a
  positive of that box), binary cross-entropy on the classes and GIoU on the boxes.
- ``shapes_segmenter.onnx``: a small U-Net (16-24-32-48 channels, three skip connections) after a
  fixed brightness layer, logits ``[N, 4, 96, 96]`` for background, square, disc, triangle; one
  binary cross-entropy per class.

Both take NCHW RGB in [0, 1] (``unit``) and are exported with ``onnxviz.convert.pytorch``, whose
metadata says the task and, for the detector, the layout. Run from the repository root::

    python -m models.train_scenes            # both, a few minutes on two cores
    python -m models.train_scenes --only detector
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.scenes import LABELS, SIZE, make_scenes

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "onnxviz" / "data" / "models"
DETECTOR_PATH = OUT / "shapes_detector.onnx"
SEGMENTER_PATH = OUT / "shapes_segmenter.onnx"
TRAIN_SEED, TEST_SEED = 11, 12
STRIDES = (8, 16)
C = len(LABELS)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU())


class ShapesDetector(nn.Module):
    """The detector; ``forward`` returns the decoded ``[N, 4 + C, A]`` head (``yolov8``)."""

    def __init__(self, size: int = SIZE):
        super().__init__()
        self.stem = _block(3, 16, 2)
        self.stage2 = _block(16, 32, 2)
        self.stage3 = _block(32, 48, 2)  # stride 8
        self.stage4 = _block(48, 64, 2)  # stride 16
        self.head8 = nn.Sequential(_block(48, 48), nn.Conv2d(48, 4 + C, 1))
        self.head16 = nn.Sequential(_block(64, 64), nn.Conv2d(64, 4 + C, 1))
        for s in STRIDES:
            n = size // s
            gy, gx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            centres = torch.stack([gx, gy]).reshape(2, -1).float() * s + s / 2
            self.register_buffer(f"centres{s}", centres[None])  # (1, 2, n*n)

    def raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        p8 = self.stage3(self.stage2(self.stem(x)))
        p16 = self.stage4(p8)
        return [self.head8(p8).flatten(2), self.head16(p16).flatten(2)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for s, r in zip(STRIDES, self.raw(x)):
            centres = getattr(self, f"centres{s}")
            ltrb = F.softplus(r[:, :4]) * s
            lo = centres - ltrb[:, :2]
            hi = centres + ltrb[:, 2:]
            out.append(torch.cat([(lo + hi) / 2, hi - lo, torch.sigmoid(r[:, 4:])], dim=1))
        return torch.cat(out, dim=2)


class Brightness(nn.Module):
    """A fixed (not trained) 1x1 layer: ``leaky_relu(10 * (x - 0.55), 0.01)`` per channel on
    [0, 1] inputs. A shape has two channels of at least 170/255 (0.67 -> 1.2 and more), the noise
    none above 110/255 (0.43 -> -0.012 at most), so the noise reaches the network 100x more weakly
    than a shape (the shapes classifiers' whiteness layer, ``models/README.md``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(10.0 * (x - 0.55), 0.01)


class ShapesSegmenter(nn.Module):
    """A U-Net of three levels (16-24-32 channels, a 48-channel bottleneck at stride 8, three
    skip connections) after the fixed :class:`Brightness` layer: logits ``[N, 1 + C, H, W]``.
    The bottleneck sees about 70 px, enough to tell a 40 px disc's centre from a square's."""

    def __init__(self):
        super().__init__()
        self.bright = Brightness()
        self.enc1 = nn.Sequential(_block(3, 16), _block(16, 16))
        self.enc2 = nn.Sequential(_block(16, 24), _block(24, 24))
        self.enc3 = nn.Sequential(_block(24, 32), _block(32, 32))
        self.mid = nn.Sequential(_block(32, 48), _block(48, 48))
        self.up3 = nn.ConvTranspose2d(48, 32, 2, 2)
        self.dec3 = _block(64, 32)
        self.up2 = nn.ConvTranspose2d(32, 24, 2, 2)
        self.dec2 = _block(48, 24)
        self.up1 = nn.ConvTranspose2d(24, 16, 2, 2)
        self.dec1 = _block(32, 16)
        self.out = nn.Conv2d(16, 1 + C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(self.bright(x))
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        m = self.mid(F.max_pool2d(e3, 2))
        d3 = self.dec3(torch.cat([self.up3(m), e3], 1))
        d2 = self.dec2(torch.cat([self.up2(d3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def _targets(det: ShapesDetector, boxes, classes):
    """Per anchor: the positive box (or none) by centre sampling, smallest box first."""
    centres = torch.cat([getattr(det, f"centres{s}")[0] for s in STRIDES], dim=1).T  # (A, 2)
    radius = torch.cat([torch.full((getattr(det, f"centres{s}").shape[2],), 1.5 * s)
                        for s in STRIDES])
    n, a = len(boxes), len(centres)
    cls_t = torch.zeros(n, a, C)
    box_t = torch.zeros(n, a, 4)
    pos = torch.zeros(n, a, dtype=torch.bool)
    for i in range(n):
        b = torch.from_numpy(boxes[i])
        if not len(b):
            continue
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        for k in torch.argsort(area, descending=True):  # the smallest box written last wins
            x0, y0, x1, y1 = b[k]
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            near = ((centres[:, 0] - cx).abs() <= radius) & ((centres[:, 1] - cy).abs() <= radius)
            inside = (centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) \
                & (centres[:, 1] < y1)
            m = near & inside
            pos[i, m] = True
            cls_t[i, m] = 0
            cls_t[i, m, int(classes[i][k])] = 1
            box_t[i, m] = b[k]
    return pos, cls_t, box_t


def _giou(pred_cxcywh: torch.Tensor, xyxy: torch.Tensor) -> torch.Tensor:
    p = torch.cat([pred_cxcywh[:, :2] - pred_cxcywh[:, 2:] / 2,
                   pred_cxcywh[:, :2] + pred_cxcywh[:, 2:] / 2], 1)
    lt, rb = torch.max(p[:, :2], xyxy[:, :2]), torch.min(p[:, 2:], xyxy[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda q: (q[:, 2:] - q[:, :2]).clamp(min=0).prod(1)  # noqa: E731
    union = area(p) + area(xyxy) - inter
    hull = (torch.max(p[:, 2:], xyxy[:, 2:]) - torch.min(p[:, :2], xyxy[:, :2])).prod(1)
    return inter / union - (hull - union) / hull


def _fit(net: nn.Module, loss_of, n: int, steps: int, batch: int, seed: int, name: str,
         every: int) -> nn.Module:
    """Adam with a one-cycle schedule on ``loss_of(indices) -> (loss, text)`` over random
    batches of ``n`` samples; a progress line every ``every`` steps. Returns ``net`` in eval
    mode."""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        loss, text = loss_of(rng.integers(0, n, batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % every == 0 or step == steps - 1:
            print(f"{name} step {step}: {text} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return net.eval()


def train_detector(steps: int, batch: int, seed: int = 0) -> ShapesDetector:
    torch.manual_seed(seed)
    data = make_scenes(batch * 200, seed=TRAIN_SEED)
    x_all = _tensor(data.images)
    net = ShapesDetector()

    def loss_of(idx):
        pos, cls_t, box_t = _targets(net, [data.boxes[i] for i in idx],
                                     [data.classes[i] for i in idx])
        out = net(x_all[idx]).permute(0, 2, 1)  # (n, A, 4 + C)
        probs = out[..., 4:].clamp(1e-6, 1 - 1e-6)
        npos = max(1, int(pos.sum()))
        loss_cls = F.binary_cross_entropy(probs, cls_t, reduction="sum") / npos
        loss_box = (1 - _giou(out[..., :4][pos], box_t[pos])).sum() / npos
        return loss_cls + 2.0 * loss_box, f"cls {loss_cls.item():.3f} box {loss_box.item():.3f}"

    return _fit(net, loss_of, len(x_all), steps, batch, seed, "detector", 200)


def train_segmenter(steps: int, batch: int, seed: int = 0) -> ShapesSegmenter:
    """One sigmoid (binary cross-entropy) per class, background included, so a class's logit is
    positive on its own pixels and negative elsewhere: a region's logits then say "this class"
    and nothing about the other shapes' classes (with a softmax only the differences of the logits
    are trained)."""
    torch.manual_seed(seed)
    data = make_scenes(batch * 200, seed=TRAIN_SEED + 100)
    x_all, y_all = _tensor(data.images), torch.from_numpy(data.masks)
    net = ShapesSegmenter()

    def loss_of(idx):
        y = F.one_hot(y_all[idx], 1 + C).permute(0, 3, 1, 2).float()
        loss = F.binary_cross_entropy_with_logits(net(x_all[idx]), y)
        return loss, f"{loss.item():.4f}"

    return _fit(net, loss_of, len(x_all), steps, batch, seed, "segmenter", 100)


def export(net: nn.Module, path: Path, task: str, layout: str | None = None) -> None:
    """Writes ``net`` with the task's metadata; a segmenter's labels name its background too."""
    from onnxviz.convert.pytorch import convert

    labels = ["background", *LABELS] if task == "segment" else list(LABELS)
    convert(net, path, input_size=(SIZE, SIZE), preprocess="unit", labels=labels,
            task=task, layout=layout)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["detector", "segmenter"])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.only in (None, "detector"):
        net = train_detector(args.steps or 1500, args.batch)
        export(net, DETECTOR_PATH, "detect", "yolov8")
    if args.only in (None, "segmenter"):
        net = train_segmenter(args.steps or 1000, args.batch)
        export(net, SEGMENTER_PATH, "segment")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
