"""The scenes detector (``models/train_scenes.py:ShapesDetector``) as a Keras 3 model (NHWC).

Issue 22 asks for the detector exported "with the Keras exporter too if the head converts": this
is the same network, layer for layer, with the torch weights copied in, for
``onnxviz.convert.keras`` (``model.export(format="onnx")``, tf2onnx). It differs from the torch
module only where Keras must:

- the input is NHWC (``channels_last``), so the kernels are transposed ``(O, I, kh, kw)`` ->
  ``(kh, kw, I, O)``;
- a stride-2 3x3 convolution pads one pixel on each side first (``ZeroPadding2D`` + ``valid``):
  Keras's ``same`` pads only the bottom and right of an even input, torch's ``padding=1`` the top
  and left as well, which shifts the grid by a pixel;
- the head maps are NHWC, so each is reshaped to ``(N, h*w, 4 + C)`` (anchors in torch's
  ``flatten(2)`` order, row by row) and the decoded head is transposed to torch's
  ``[N, 4 + C, A]`` (``yolov8``).

Usage (the bundled detector's weights, or a trained ``ShapesDetector`` ``net``; exported with
onnxviz's metadata)::

    from models.scenes_keras import bundled_weights, keras_twin
    from onnxviz.convert.keras import convert
    convert(keras_twin(bundled_weights()), "det_keras.onnx", preprocess="unit",
            labels=["square", "disc", "triangle"], task="detect", layout="yolov8")
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models.scenes import LABELS, SIZE  # noqa: E402

STRIDES = (8, 16)
C = len(LABELS)


@keras.saving.register_keras_serializable(package="onnxviz_scenes")
class YoloDecode(keras.layers.Layer):
    """NHWC raw head maps (one per stride, ``4 + C`` channels: distances to the box's sides,
    then class logits) -> ``[N, 4 + C, A]``: ``cx, cy, w, h`` in input pixels and sigmoid class
    scores, in the order and arithmetic of ``ShapesDetector.forward``."""

    def __init__(self, size: int = SIZE, strides=STRIDES, **kwargs):
        super().__init__(**kwargs)
        self.size, self.strides = int(size), tuple(int(s) for s in strides)

    def _centres(self, s: int) -> np.ndarray:
        n = self.size // s
        gy, gx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        return (np.stack([gx, gy], -1).reshape(-1, 2) * s + s / 2).astype(np.float32)  # (A, 2)

    def call(self, maps):
        ops = keras.ops
        out = []
        for s, m in zip(self.strides, maps):
            r = ops.reshape(m, (-1, (self.size // s) ** 2, m.shape[-1]))  # (N, h*w, 4 + C)
            centres = self._centres(s)[None].astype(self.compute_dtype)
            ltrb = ops.softplus(r[..., :4]) * s
            lo = centres - ltrb[..., :2]
            hi = centres + ltrb[..., 2:]
            out.append(ops.concatenate([(lo + hi) / 2, hi - lo, ops.sigmoid(r[..., 4:])], -1))
        return ops.transpose(ops.concatenate(out, 1), (0, 2, 1))

    def compute_output_shape(self, shapes):
        return (shapes[0][0], shapes[0][-1], sum((self.size // s) ** 2 for s in self.strides))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "strides": list(self.strides)}


def _conv(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True,
          dtype: str = "float32"):
    if kernel == 3 and stride == 2:
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad", dtype=dtype)(x)
        padding = "valid"
    else:
        padding = "same"
    return keras.layers.Conv2D(filters, kernel, stride, padding, name=name, dtype=dtype,
                               activation="relu" if relu else None)(x)


def keras_detector(size: int = SIZE, dtype: str = "float32") -> keras.Model:
    """The untrained Keras network; its Conv2D layers are named after the torch modules
    (``stem``, ``stage2`` ... ``head8_0``, ``head8_1``), which name the ONNX nodes. ``dtype``
    float64 gives a reference twin for gradient checks."""
    x = inputs = keras.Input((size, size, 3), name="x", dtype=dtype)
    x = _conv(x, 16, 3, 2, "stem", dtype=dtype)
    x = _conv(x, 32, 3, 2, "stage2", dtype=dtype)
    p8 = _conv(x, 48, 3, 2, "stage3", dtype=dtype)
    p16 = _conv(p8, 64, 3, 2, "stage4", dtype=dtype)
    h8 = _conv(_conv(p8, 48, 3, 1, "head8_0", dtype=dtype), 4 + C, 1, 1, "head8_1", False, dtype)
    h16 = _conv(_conv(p16, 64, 3, 1, "head16_0", dtype=dtype), 4 + C, 1, 1, "head16_1", False,
                dtype)
    decoded = YoloDecode(size, name="decode", dtype=dtype)([h8, h16])
    return keras.Model(inputs, decoded, name="shapes_detector")


#: Keras layer -> the torch ``ShapesDetector`` Conv2d it copies.
TORCH_NAMES = {"stem": "stem.0", "stage2": "stage2.0", "stage3": "stage3.0", "stage4": "stage4.0",
               "head8_0": "head8.0.0", "head8_1": "head8.1", "head16_0": "head16.0.0",
               "head16_1": "head16.1"}


def keras_twin(weights, dtype: str = "float32") -> keras.Model:
    """The Keras model computing what the torch ``ShapesDetector`` computes, called once so that
    it exports.

    Args:
        weights: the torch module, its ``state_dict``, or any mapping of the same names to arrays
            (the initializers of its ONNX export: :func:`bundled_weights`); kernels are
            transposed to ``channels_last``.
        dtype: the weights' and computations' type (``float64``: a reference for gradients).
    """
    if hasattr(weights, "state_dict"):
        weights = weights.state_dict()
    state = {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)
             for k, v in weights.items()}
    size = int(round(state["centres8"].shape[-1] ** 0.5)) * 8
    model = keras_detector(size, dtype)
    for layer, torch_name in TORCH_NAMES.items():
        w, b = state[f"{torch_name}.weight"], state[f"{torch_name}.bias"]
        model.get_layer(layer).set_weights([w.transpose(2, 3, 1, 0), b])
    model(np.zeros((1, size, size, 3), dtype))
    return model


def bundled_weights() -> dict[str, np.ndarray]:
    """The bundled ``shapes_detector.onnx``'s weights under their torch names (its export keeps
    ``stem.0.weight`` ... ``centres16`` as initializers)."""
    import onnx
    from onnx import numpy_helper

    import onnxviz

    proto = onnx.load(onnxviz.bundled_model("shapes_detector"))
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
