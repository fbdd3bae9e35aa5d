"""Files shipped inside the package: ImageNet class names and the bundled models."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "models"
#: The bundled models (``models/README.md`` of the source repository tells how each was made).
BUNDLED = ("efficientnet_lite0", "shapes_cnn", "shapes_keras", "shapes_vit", "shapes_detector",
           "shapes_segmenter")


def bundled_model(name: str = "efficientnet_lite0") -> Path:
    """The path of a model shipped with onnxviz, for :func:`onnxviz.load`.

    Args:
        name: one of :data:`BUNDLED`: ``efficientnet_lite0`` (ImageNet, 224 x 224, 18.6 MB),
            ``shapes_cnn``, ``shapes_keras`` or ``shapes_vit`` (64 x 64, white rectangle or not),
            ``shapes_detector`` (a YOLO-style detector of squares, discs and triangles, 96 x 96)
            or ``shapes_segmenter`` (a U-Net of the same scenes).

    Returns:
        The ``.onnx`` file inside the installed package.

    Raises:
        ModelError: an unknown name, or a file missing from the installation.
    """
    if name not in BUNDLED:
        raise ModelError(f"no bundled model {name!r}; bundled: {', '.join(BUNDLED)}")
    path = MODELS_DIR / f"{name}.onnx"
    if not path.is_file():
        raise ModelError(f"the bundled model {path} is missing from this installation; "
                         "reinstall onnxviz or give a model path")
    return path
