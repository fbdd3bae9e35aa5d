"""Baselines given as a tensor or an image: what Integrated Gradients starts from and what an
occluding patch shows, beyond the methods' own words (``"black"``, ``"gray"``, a grey level).

One rule decides what a value means, for every method that takes one:

- ``"zero"``: the zero tensor of the model input (Captum's default baseline). For a model that
  normalises its pixels (ImageNet mean and std), this is not the black image: ``"black"`` is pixel
  value 0 preprocessed like the image.
- an array shaped like the model input, with or without a batch axis of 1 ((C, H, W) or
  (1, C, H, W) for NCHW, (H, W, C) or (1, H, W, C) for NHWC), whose dtype is not ``uint8``:
  a tensor in model space, used as it is (Captum's ``baselines`` argument).
- any other (H, W, 3) array, and every ``uint8`` array: a pixel image (RGB, 0..255), resized and
  preprocessed like the explained image. On a 3-channel NHWC model, a float (H, W, 3) array at the
  input size is therefore a tensor; give pixels as ``uint8`` (or a file) to mean an image.
- a string that is not one of the method's words nor a number: an image file or
  ``skimage:NAME``, read, resized and preprocessed like the explained image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OnnxvizError, OptionError

#: Every word a baseline or fill option takes, over all methods (anything else is a file).
WORDS = frozenset({"zero", "black", "blur", "gray", "grey", "mean", "uniform"})


@dataclass(frozen=True)
class Reference:
    """A baseline given as a tensor or an image.

    Attributes:
        kind: ``"tensor"`` (model space) or ``"pixels"`` (preprocessed like the image).
        value: ``"tensor"``: (1, *model.input.shape) float32; ``"pixels"``: the image at the
            model's input size, as :meth:`onnxviz.Model.to_pixels` gives it (1, H, W, 3).
    """

    kind: str
    value: np.ndarray

    def model_space(self, model) -> np.ndarray:
        """The baseline as one model input, (1, *model.input.shape) float32."""
        if self.kind == "tensor":
            return self.value
        return np.asarray(model.normalize(self.value), np.float32)


def _number(value) -> bool:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
    return True


def names_file(value) -> bool:
    """Whether an option's text value names a file (neither a word nor a number nor
    ``skimage:NAME``): the server refuses such values."""
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    parts = text.replace(",", " ").split()
    return not (text in WORDS or text.startswith("skimage:") or
                (parts and all(_number(p) for p in parts)))


def reference(model, value, option: str, words=()) -> Reference | None:
    """``value`` as a :class:`Reference`, or None when it is for the method to read (one of its
    ``words``, a number, or a short sequence of numbers such as a colour). See the module doc.

    Raises:
        OptionError: an array of neither shape, or an image that cannot be read.
    """
    shape = tuple(model.input.shape)
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "zero":
            return Reference("tensor", np.zeros((1, *shape), np.float32))
        if text in words or not names_file(value):
            return None
        return Reference("pixels", _read(model, value, option, words))
    if not isinstance(value, np.ndarray) or value.ndim <= 1:
        return None
    a = value
    if a.dtype != np.uint8 and a.shape in (shape, (1, *shape)):
        if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
            raise OptionError(f"{option}: a baseline tensor must hold finite numbers")
        return Reference("tensor", np.ascontiguousarray(a.reshape(1, *shape), np.float32))
    img = a[0] if a.ndim == 4 and a.shape[0] == 1 else a
    if img.ndim == 3 and img.shape[-1] == 3:
        return Reference("pixels", _read(model, img, option))
    raise OptionError(f"{option}: an array baseline is a model-space tensor of the model input's "
                      f"shape {shape} (or {(1, *shape)}), or an (H, W, 3) pixel image; got shape "
                      f"{a.shape}")


def _read(model, source, option: str, words=()) -> np.ndarray:
    try:
        return model.to_pixels(source)
    except (OnnxvizError, OSError, ValueError) as e:
        what = "array" if isinstance(source, np.ndarray) else repr(str(source)[:200])
        hint = (f" (not one of the words {', '.join(sorted({'zero', *words}))}, not a number)"
                if isinstance(source, str) else "")
        raise OptionError(f"{option}: {what}{hint} is not a readable image: {e}") from None
