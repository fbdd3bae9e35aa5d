"""Trains ``onnxviz/data/models/shapes_vit.onnx``: a small vision transformer on the shapes data (``models/shapes.py``).

The same fixed per-pixel whiteness layer as ``shapes_cnn`` (a frozen 1x1 Conv + LeakyReLU that
passes white 100x more strongly than noise, see ``models/README.md``), then a ViT (Dosovitskiy et
al., https://arxiv.org/abs/2010.11929): 8x8 patches embedded by a stride-8 convolution (an 8x8 grid
of 64 tokens of width 64) after a class token, learned position embeddings, 4 pre-norm blocks of
4-head self-attention and a 2x MLP, and a Linear head on the class token. Attention is written out
(``softmax(q k^T / sqrt(d))``) so the exported graph has one ``Softmax`` of shape [N, heads, 65, 65]
per block, the tensor the attention methods read. Module names follow timm's ``VisionTransformer``
(``blocks.3.norm1``, ``blocks.3.attn``), so the peers' layer conventions apply. Input NCHW, pixels
scaled to [0, 1] ("unit"). Trained on CPU in about a minute, exported with ``onnxviz.convert.pytorch``
(dynamo exporter).

Two choices differ from timm's defaults, both measured (``models/README.md``, shapes_vit):

- **No final LayerNorm**: the head reads the class token's residual stream directly. Behind a
  LayerNorm the score is scale-invariant in that stream, so its gradient is orthogonal to it and
  gradient x activation (Grad-CAM at ``blocks.3.norm1``) ranked tokens by an arbitrary sign.
- **Position embeddings drawn with std 2** (``POS_STD``, timm uses 0.02): the whiteness layer
  leaves a noise patch almost empty, so its token is little more than its position embedding; with
  a tiny one, LayerNorm blows up what the token gathered from the rectangle in earlier blocks and
  noise tokens out-rank the rectangle's own tokens in the last block.

Run from the repository root::

    python -m models.train_shapes_vit
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from models.shapes import LABELS, LEAK, SIZE, make_dataset
from models.train_shapes_torch import (N_TEST, N_TRAIN, TEST_SEED, TRAIN_SEED, _whiteness, accuracy,
                                       fit, to_input)

HERE = Path(__file__).resolve().parent
ONNX_PATH = HERE.parent / "onnxviz" / "data" / "models" / "shapes_vit.onnx"
PATCH, DIM, DEPTH, HEADS = 8, 64, 4, 4
POS_STD = 2.0  # std of the initial position embeddings (see the module docstring)


class Attention(nn.Module):
    """Multi-head self-attention with the softmax written out."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ShapesViT(nn.Module):
    """The untrained network (input (N, 3, 64, 64) in [0, 1], output (N, 2) logits)."""

    def __init__(self):
        super().__init__()
        grid = SIZE // PATCH
        self.whiteness = nn.Sequential(_whiteness(), nn.LeakyReLU(LEAK))
        self.patch_embed = nn.Conv2d(1, DIM, PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, DIM) * POS_STD)
        self.blocks = nn.Sequential(*[Block(DIM, HEADS) for _ in range(DEPTH)])
        self.head = nn.Linear(DIM, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(self.whiteness(x)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.blocks(x)[:, 0])  # no final norm (see the module docstring)


def train(epochs: int = 1, batch: int = 64, seed: int = 0, log=print) -> nn.Module:
    """Trains with AdamW (one-cycle) on ``N_TRAIN`` images; returns the eval-mode network."""
    torch.manual_seed(seed)
    images, labels, _ = make_dataset(N_TRAIN, seed=TRAIN_SEED)
    x, y = to_input(images), torch.from_numpy(labels)
    net = ShapesViT()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * (N_TRAIN // batch))
    return fit(net, opt, sched, x, y, epochs, batch, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ONNX_PATH)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    net = train(epochs=args.epochs)
    print(f"trained in {time.perf_counter() - start:.0f} s; held-out accuracy (seed {TEST_SEED}, "
          f"{N_TEST} images): {accuracy(net, TEST_SEED):.4f}")
    from onnxviz.convert.pytorch import convert

    convert(net, args.output, input_size=(SIZE, SIZE), preprocess="unit", labels=list(LABELS),
            dynamo=True, opset=18)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
