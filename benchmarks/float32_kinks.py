"""How far a float32 gradient can be from the float64 one, and why: ReLU/Clip/MaxPool kinks.

A pre-activation that lies within float32 rounding of a kink (ReLU's 0, ReLU6's 0 and 6, a
MaxPool tie) can land on the other side of it in float32 than in float64. The two gradients then
differ by that unit's whole contribution, far more than rounding. Photos with flat regions (sky,
walls, saturated pixels) make such near-ties common, because neighbouring inputs are equal.

For each architecture (timm, random weights, TorchScript export, 224 px) and each input, this
prints max |g - g64| / max |g64| for onnxviz's float32 gradient and torch's own float32 autograd
against torch's float64 autograd (batch 2), then the same after nudging the input by 1e-3 x
N(0, 1), which moves the pre-activations off the kinks::

    python benchmarks/float32_kinks.py                      # densenet121, ghostnet_100, inception_v3
    python benchmarks/float32_kinks.py --models resnet18

The README's accuracy statement quotes these rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _inputs(size: int) -> dict:
    import cv2
    import skimage.data

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def photo(img):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) / 255.0
        return ((img - mean) / std).transpose(2, 0, 1).astype(np.float32)

    flat = np.zeros((size, size, 3), np.uint8) + 128
    flat[size // 4: size // 2, size // 4: size // 2] = 220
    return {"photos (chelsea, coffee)": np.stack([photo(skimage.data.chelsea()),
                                                 photo(skimage.data.coffee())]),
            "flat image + square": np.stack([photo(flat), photo(skimage.data.astronaut())]),
            "random N(0, 1)": np.random.default_rng(0).standard_normal(
                (2, 3, size, size)).astype(np.float32)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["densenet121", "ghostnet_100", "inception_v3"])
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args(argv)

    import torch

    import onnxviz as ov
    from benchmarks.transformers import _timm

    timm = _timm()
    folder = Path(tempfile.mkdtemp(prefix="onnxviz-kinks-"))
    print(f"max |g - g64| / max |g64|, batch 2, {args.size} px, targets 1 and 7 "
          "(ours: onnxviz float32; torch32: torch float32 autograd)")
    print(f"{'model':<16}{'input':<26}{'ours':>10}{'torch32':>10}{'ours, nudged':>14}"
          f"{'torch32, nudged':>17}")
    for name in args.models:
        torch.manual_seed(0)
        net = timm.create_model(name, pretrained=False).eval()
        twin = timm.create_model(name, pretrained=False).eval()
        twin.load_state_dict(net.state_dict())
        twin = twin.double()
        path = folder / f"{name}.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.randn(2, 3, args.size, args.size),), path, dynamo=False,
                              opset_version=17, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
        m = ov.load(path, preprocess="imagenet")

        def grad(model, x):
            x = x.clone().requires_grad_(True)
            y = model(x)
            (y[0, 1] + y[1, 7]).backward()
            return x.grad.double().numpy()

        for label, x in _inputs(args.size).items():
            row = []
            for nudge in (0.0, 1e-3):
                xn = x + nudge * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
                xt = torch.from_numpy(xn)
                g64 = grad(twin, xt.double())
                scale = np.abs(g64).max()
                row += [np.abs(m.grad(xn, [1, 7]) - g64).max() / scale,
                        np.abs(grad(net, xt) - g64).max() / scale]
            print(f"{name:<16}{label:<26}{row[0]:>10.1e}{row[1]:>10.1e}{row[2]:>14.1e}"
                  f"{row[3]:>17.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
