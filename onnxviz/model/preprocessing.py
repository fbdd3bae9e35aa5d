"""Preprocessing: how RGB pixels in [0, 255] become the model's input values.

One formula covers every preset: ``x = (pixels[..., order] * scale - mean) / std`` with ``order``
the channel order (RGB, or BGR for Caffe-style models).

| preset     | scale   | mean                      | std                      | order | used by                 |
|------------|---------|---------------------------|--------------------------|-------|-------------------------|
| `imagenet` | 1/255   | 0.485, 0.456, 0.406       | 0.229, 0.224, 0.225      | RGB   | torchvision, timm       |
| `tf`       | 1/127.5 | 1, 1, 1                   | 1, 1, 1                  | RGB   | Keras MobileNet/Inception (`[-1, 1]`) |
| `caffe`    | 1       | 103.939, 116.779, 123.68  | 1, 1, 1                  | BGR   | Keras VGG16/ResNet50 `preprocess_input` |
| `unit`     | 1/255   | 0                         | 1                        | RGB   | `[0, 1]` inputs         |
| `raw`      | 1       | 0                         | 1                        | RGB   | `[0, 255]`; MATLAB (normalization inside the graph) |

The converters write the choice into the model's metadata (``onnxviz.preprocess``, JSON: either
``{"preset": NAME}`` or ``{"mean": [..], "std": [..], "scale": s, "channel_order": "RGB"|"BGR"}``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError

METADATA_KEY = "onnxviz.preprocess"


@dataclass(frozen=True)
class Preprocessing:
    """``x = (pixels[..., order] * scale - mean) / std`` on RGB pixels in [0, 255].

    Attributes:
        name: preset name, or ``"custom"``.
        mean: per-channel mean (3 values; in the channel order of the model).
        std: per-channel standard deviation.
        scale: multiplier applied to the pixels before ``mean``/``std``.
        channel_order: ``"RGB"`` or ``"BGR"``.
        source: where it came from: ``"argument"``, ``"metadata"``, ``"matlab"`` or ``"guess"``.
    """

    name: str
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    channel_order: str = "RGB"
    source: str = field(default="argument", compare=False)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB pixels in [0, 255] -> float32 (N, H, W, 3) normalized values."""
        px = np.asarray(pixels)
        if self.channel_order == "BGR":
            px = px[..., ::-1]
        x = px.astype(np.float32)  # a new array: scaled in place below
        mean = np.asarray(self.mean, np.float64)
        std = np.asarray(self.std, np.float64)
        x *= (self.scale / std).astype(np.float32)  # (x * scale - mean) / std, in two passes
        x -= (mean / std).astype(np.float32)
        return x

    def to_json(self) -> dict:
        """The metadata JSON form (``{"preset": name}`` for presets)."""
        if self.name in PRESETS:
            return {"preset": self.name}
        return {"mean": list(self.mean), "std": list(self.std), "scale": self.scale,
                "channel_order": self.channel_order}

    def describe(self) -> str:
        """One line for people: preset name or the formula's numbers."""
        if self.name in PRESETS:
            return self.name
        return (f"custom (scale={self.scale:g}, mean={list(self.mean)}, std={list(self.std)}, "
                f"{self.channel_order})")


PRESETS: dict[str, Preprocessing] = {
    "imagenet": Preprocessing("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1 / 255.0),
    "tf": Preprocessing("tf", (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 1 / 127.5),
    "caffe": Preprocessing("caffe", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), 1.0, "BGR"),
    "unit": Preprocessing("unit", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1 / 255.0),
    "raw": Preprocessing("raw", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0),
}


def preset(name: str, source: str = "argument") -> Preprocessing:
    """The preset called ``name`` (see the table above)."""
    try:
        p = PRESETS[name]
    except KeyError:
        raise OptionError(f"unknown preprocessing preset {name!r}; "
                          f"choose from: {', '.join(PRESETS)}") from None
    return Preprocessing(p.name, p.mean, p.std, p.scale, p.channel_order, source=source)


def _triple(value, what: str) -> tuple[float, float, float]:
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise OptionError(f"preprocessing {what} must be 1 or 3 finite numbers, "
                          f"got {value!r}"[:200]) from None
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise OptionError(f"preprocessing {what} must be 1 or 3 finite numbers, got {value!r}")
    return tuple(float(v) for v in arr)


def from_spec(spec, source: str = "argument") -> Preprocessing:
    """Build a :class:`Preprocessing` from a preset name, a dict (metadata form), JSON text, or one.

    Args:
        spec: ``"imagenet"``; ``{"preset": "tf"}``; ``{"mean": .., "std": .., "scale": ..,
            "channel_order": ..}``; the same as JSON text; or a :class:`Preprocessing`.
        source: recorded in ``Preprocessing.source``.
    """
    if isinstance(spec, Preprocessing):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{"):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as e:
                raise OptionError(f"preprocessing JSON is invalid: {e}") from None
        else:
            return preset(text, source)
    if not isinstance(spec, dict):
        raise OptionError("preprocessing must be a preset name or a dict, "
                          f"got {type(spec).__name__}")
    if "preset" in spec:
        return preset(str(spec["preset"]), source)
    unknown = set(spec) - {"mean", "std", "scale", "channel_order"}
    if unknown:
        raise OptionError(f"unknown preprocessing keys {sorted(unknown)}; "
                          "use mean, std, scale, channel_order (or preset)")
    order = str(spec.get("channel_order", "RGB")).upper()
    if order not in ("RGB", "BGR"):
        raise OptionError(f"channel_order must be 'RGB' or 'BGR', got {order!r}")
    try:
        scale = float(spec.get("scale", 1.0))
    except (TypeError, ValueError):
        raise OptionError(f"preprocessing scale must be a number, got "
                          f"{spec.get('scale')!r}"[:200]) from None
    std = _triple(spec.get("std", 1.0), "std")
    if not np.isfinite(scale) or scale == 0 or any(s == 0 for s in std):
        raise OptionError("preprocessing scale and std must be finite and non-zero")
    return Preprocessing("custom", _triple(spec.get("mean", 0.0), "mean"), std, scale, order,
                         source=source)


def resolve(proto, override=None, *, channels: int = 3) -> Preprocessing:
    """Choose the preprocessing of a model.

    Order: ``override`` (an argument), then metadata ``onnxviz.preprocess``, then MATLAB files
    (``raw``: MATLAB exports normalization inside the graph), then a guess with a warning:
    ``imagenet`` for 3-channel inputs of at least 64x64 pixels from PyTorch-like exporters, ``unit``
    otherwise (small verification/benchmark nets usually take [0, 1] inputs).
    """
    if override is not None:
        return from_spec(override, source="argument")
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY in meta:
        try:
            return from_spec(meta[METADATA_KEY], source="metadata")
        except OptionError as e:
            warnings.warn(f"ignoring bad {METADATA_KEY} metadata ({e})", stacklevel=4)
    if "matlab" in (proto.producer_name or "").lower():
        return preset("raw", source="matlab")
    guess = "imagenet" if channels == 3 and _large_input(proto) else "unit"
    warnings.warn(
        f"model has no {METADATA_KEY} metadata; guessing preprocessing {guess!r}. "
        "Pass preprocess= (or --preprocess) if predictions look wrong.",
        stacklevel=4,
    )
    return preset(guess, source="guess")


def _large_input(proto) -> bool:
    for inp in proto.graph.input:
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        if len(dims) == 4 and sum(d >= 64 for d in dims) >= 2:
            return True
    return False
