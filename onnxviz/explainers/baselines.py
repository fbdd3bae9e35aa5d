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

Methods that draw from a distribution of baselines (Gradient SHAP, DeepLIFT SHAP: ``many=True``)
also take a set of K baselines (Captum's ``baselines`` tensor of K rows):

- an array (K, *input shape) whose dtype is not ``uint8``: K tensors in model space;
- a (K, H, W, 3) array of any other shape or dtype: K pixel images;
- a list or tuple (not of numbers alone) whose items are each a value of the rule above
  (``"zero"``, a tensor, an image array, a file): K baselines.
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
            model's input size, as :meth:`onnxviz.Model.to_pixels` gives it (1, H, W, 3). A set of
            K baselines (``many=True``) has K rows.
    """

    kind: str
    value: np.ndarray

    def model_space(self, model) -> np.ndarray:
        """The baseline as model inputs, (K, *model.input.shape) float32 (K = 1 but for a set)."""
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
    ``skimage:NAME``), or a list's item does: the server refuses such values."""
    if isinstance(value, (list, tuple)):
        return any(names_file(v) for v in value)
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    parts = text.replace(",", " ").split()
    return not (text in WORDS or text.startswith("skimage:") or
                (parts and all(_number(p) for p in parts)))


def reference(model, value, option: str, words=(), many: bool = False) -> Reference | None:
    """``value`` as a :class:`Reference`, or None when it is for the method to read (one of its
    ``words``, a number, or a short sequence of numbers such as a colour). See the module doc;
    ``many``: a set of baselines is also taken (its Reference has K rows, in model space).

    Raises:
        OptionError: an array of neither shape, an empty set, a value that is not finite, or an
            image that cannot be read.
    """
    shape = tuple(model.input.shape)
    if many:
        found = _set_of(model, value, option, words, shape)
        if found is not None:
            return found
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "zero":
            return Reference("tensor", np.zeros((1, *shape), np.float32))
        if text in words or not names_file(value):
            return None
        return Reference("pixels", _read(model, value, option, words))
    if not isinstance(value, np.ndarray) or value.ndim <= 1:
        return None
    a = _finite(value, option)
    if a.dtype != np.uint8 and a.shape in (shape, (1, *shape)):
        return Reference("tensor", np.ascontiguousarray(a.reshape(1, *shape), np.float32))
    img = a[0] if a.ndim == 4 and a.shape[0] == 1 else a
    if img.ndim == 3 and img.shape[-1] == 3:
        return Reference("pixels", _read(model, img, option))
    raise OptionError(f"{option}: an array baseline is a model-space tensor of the model input's "
                      f"shape {shape} (or {(1, *shape)}), or an (H, W, 3) pixel image; got shape "
                      f"{a.shape}")


def _finite(a: np.ndarray, option: str) -> np.ndarray:
    if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
        raise OptionError(f"{option}: a baseline array must hold finite numbers")
    return a


def _set_of(model, value, option: str, words, shape: tuple) -> Reference | None:
    """A set of baselines (see the module doc) in model space, or None for a single value."""
    if isinstance(value, np.ndarray) and value.ndim == len(shape) + 1 and (
            value.shape[1:] == shape or value.shape[-1] == 3):
        if len(value) == 0:
            raise OptionError(f"{option}: the set of baselines is empty (shape {value.shape})")
        a = _finite(value, option)
        if a.dtype != np.uint8 and a.shape[1:] == shape:
            return Reference("tensor", np.ascontiguousarray(a, np.float32))
        value = list(a)
    if not isinstance(value, (list, tuple)) or (value and all(
            _number(v) and not isinstance(v, np.ndarray) for v in value)):
        return None
    if len(value) == 0:
        raise OptionError(f"{option}: the set of baselines is empty")
    rows = []
    for v in value:
        one = reference(model, v, option, words)
        if one is None:
            raise OptionError(f"{option}: each baseline of a set is 'zero', an array or an "
                              f"image, got {v!r}"[:300])
        rows.append(one.model_space(model))
    return Reference("tensor", np.ascontiguousarray(np.concatenate(rows), np.float32))


def _read(model, source, option: str, words=()) -> np.ndarray:
    try:
        return model.to_pixels(source)
    except (OnnxvizError, OSError, ValueError) as e:
        what = "array" if isinstance(source, np.ndarray) else repr(str(source)[:200])
        hint = (f" (not one of the words {', '.join(sorted({'zero', *words}))}, not a number)"
                if isinstance(source, str) else "")
        raise OptionError(f"{option}: {what}{hint} is not a readable image: {e}") from None


def pixel_level(model, word_or_level: str | float, shape) -> np.ndarray:
    """``"black"`` (pixel value 0) or a grey level as model inputs, for pixel images of ``shape``
    (N, H, W, 3): the baseline a method builds itself, preprocessed like the image."""
    level = 0.0 if word_or_level == "black" else float(word_or_level)
    return model.normalize(np.full(shape, level, np.float32))


def uniform(model, seed: int, samples: int, size) -> np.ndarray:
    """``"uniform"``: ``samples`` images of uniform random pixels of ``size`` (H, W, 3) drawn from
    ``seed``, as model inputs (the same images for Gradient SHAP and DeepLIFT SHAP)."""
    rng = np.random.default_rng([seed, 1])
    return model.normalize(rng.integers(0, 256, (samples, *size)).astype(np.float32))


def word_or_level(value, option: str, words):
    """A baseline the method builds itself (``reference`` gave None): one of its ``words``, or a
    grey level 0-255 (a number, or its text, returned as a float).

    Raises:
        OptionError: anything else.
    """
    if isinstance(value, str):
        if value in words:
            return value
        try:
            value = float(value)
        except ValueError:
            raise OptionError(f"{option} must be one of {', '.join(words)}, a grey level 0-255, "
                              f"an array or an image file, got {value!r}") from None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not 0 <= value <= 255:
        raise OptionError(f"a numeric {option} is a grey level in 0..255, got {value!r}"[:300])
    return float(value)
