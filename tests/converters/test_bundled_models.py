"""The bundled models: EfficientNet-Lite0 against its torch original, the shapes models' accuracy."""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
FRESH_SEED = 2024  # none of the training/validation/test seeds of models/train_shapes_*.py


def chelsea_photo() -> np.ndarray:
    from skimage.data import chelsea

    return chelsea()


def test_efficientnet_on_chelsea_matches_torch(effnet_path):
    torch = pytest.importorskip("torch")
    from models.build_efficientnet import chelsea_pixels, normalize, torch_model

    m = ov.load(effnet_path)
    assert m.input.layout == "NCHW" and m.input.size == (224, 224) and m.num_classes == 1000
    assert m.preprocessing.source == "metadata"
    assert m.labels[281] == "tabby" and len(m.labels) == 1000
    pixels = chelsea_pixels()  # cv2.INTER_LINEAR resize, RGB
    x = normalize(pixels)  # (rgb - 127) / 128, the official EfficientNet-Lite preprocessing
    np.testing.assert_allclose(m.normalize(pixels), x, atol=1e-6)
    rng = np.random.default_rng(0)
    batch = np.concatenate([x, rng.standard_normal((2, 3, 224, 224)).astype(np.float32)])
    got = m.forward(batch)
    with torch.no_grad():
        want = torch_model()(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert int(got[0].argmax()) in CAT_CLASSES
    # the full photo through onnxviz's own resize and the recorded preprocessing: still a cat
    (best,) = m.predict(chelsea_photo(), top=1)
    assert best.index in CAT_CLASSES and best.label == m.labels[best.index]


@pytest.mark.parametrize("fixture,layout", [("shapes_path", "NCHW"), ("shapes_keras_path", "NHWC")])
def test_shapes_models_accuracy_on_a_fresh_set(request, fixture, layout):
    from models.shapes import LABELS, make_dataset

    m = ov.load(request.getfixturevalue(fixture))
    assert m.input.layout == layout and m.input.size == (64, 64)
    assert m.labels == list(LABELS) and m.preprocessing.name == "unit"
    images, labels, boxes = make_dataset(1000, seed=FRESH_SEED)
    pred = m.forward(m.preprocess(list(images)), batch_size=250).argmax(1)
    assert (pred == labels).mean() >= 0.95
    assert (boxes[labels == 1] == -1).all() and (boxes[labels == 0] >= 0).all()


def test_shapes_generator_is_deterministic_and_draws_what_it_says():
    from models.shapes import NOISE_MAX, box_mask, make_dataset

    a, la, ba = make_dataset(50, seed=5)
    b, lb, bb = make_dataset(50, seed=5)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and np.array_equal(ba, bb)
    assert not np.array_equal(a, make_dataset(50, seed=6)[0])
    assert a.dtype == np.uint8 and a.shape == (50, 64, 64, 3) and 15 <= (la == 0).sum() <= 35
    for img, label, box in zip(a, la, ba):
        white = (img == 255).all(axis=-1)
        if label == 0:
            assert np.array_equal(white, box_mask(box))  # exactly the box is white
        else:
            assert not white.any() and img.max() <= NOISE_MAX
