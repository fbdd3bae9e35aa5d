"""Trains ``onnxviz/data/models/shapes_keras.onnx``: the shapes task (``models/shapes.py``) in Keras 3 (NHWC).

The same design as ``train_shapes_torch.py`` — a fixed per-pixel 1x1 "whiteness" Conv+LeakyReLU
(3.2 on pure white, slightly negative on the noise; not trained), 3x3 Conv+ReLU blocks
with two max-pools (last feature map 16x16), global average pooling and a Dense layer — but the
Dense layer ends in a ``softmax`` activation, so the exported graph ends in ``Softmax`` and onnxviz
must explain the logits before it. Input NHWC in [0, 1] ("unit"). Exported with
``onnxviz.convert.keras`` (TensorFlow backend, tf2onnx).

Run from the repository root::

    python -m models.train_shapes_keras
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models.shapes import LABELS, LEAK, SIZE, WHITENESS_GAIN, WHITENESS_THRESHOLD, make_dataset  # noqa: E402

HERE = Path(__file__).resolve().parent
ONNX_PATH = HERE.parent / "onnxviz" / "data" / "models" / "shapes_keras.onnx"
TRAIN_SEED, VAL_SEED, TEST_SEED = 11, 12, 13
N_TRAIN, N_TEST = 8000, 2000


def shapes_cnn() -> keras.Model:
    """The untrained network; layer names become the ONNX layer names."""
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(
        1, 1, name="conv0", trainable=False,
        kernel_initializer=keras.initializers.Constant(WHITENESS_GAIN),
        bias_initializer=keras.initializers.Constant(-WHITENESS_GAIN * WHITENESS_THRESHOLD),
    )(inputs)
    x = keras.layers.LeakyReLU(negative_slope=LEAK, name="leaky0")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="shapes_keras")


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 NHWC in [0, 1] (the ``unit`` preset)."""
    return images.astype(np.float32) / 255.0


def train(epochs: int = 4, batch: int = 64, seed: int = 0) -> keras.Model:
    """Trains with Adam on ``N_TRAIN`` images; returns the model."""
    keras.utils.set_random_seed(seed)
    images, labels, _ = make_dataset(N_TRAIN, seed=TRAIN_SEED)
    val_images, val_labels, _ = make_dataset(N_TEST // 2, seed=VAL_SEED)
    model = shapes_cnn()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(to_input(images), labels, batch_size=batch, epochs=epochs, verbose=2,
              validation_data=(to_input(val_images), val_labels))
    return model


def accuracy(model: keras.Model, seed: int, n: int = N_TEST) -> float:
    """Accuracy on ``n`` fresh images drawn with ``seed``."""
    images, labels, _ = make_dataset(n, seed=seed)
    pred = model.predict(to_input(images), batch_size=256, verbose=0).argmax(1)
    return float((pred == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ONNX_PATH)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    start = time.perf_counter()
    model = train(epochs=args.epochs)
    print(f"trained in {time.perf_counter() - start:.0f} s; held-out accuracy (seed {TEST_SEED}, "
          f"{N_TEST} images): {accuracy(model, TEST_SEED):.4f}")
    from onnxviz.convert.keras import convert

    convert(model, args.output, preprocess="unit", labels=list(LABELS), opset=17)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
