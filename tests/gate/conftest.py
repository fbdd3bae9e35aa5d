"""The gate's proof setting, built once per session in pytest's tmp folder: deployment-like
images (the rectangle images carry a green corner watermark), their rectangles as regions of
interest (a 3 px margin), the bundled shapes CNN's baseline, its int8 and re-exported twins, and
the Clever Hans copy trained on watermark-labelled data."""

from __future__ import annotations

import json

import cv2
import pytest

from tests.gate.clever_hans import gate_images, reexport, train_clever_hans

METHODS = "gradcam,saliency"
MARGIN = 3


@pytest.fixture(scope="session")
def gate_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    images, labels, boxes = gate_images(6, seed=11)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    regions = {}
    for i, (im, lab, b) in enumerate(zip(images, labels, boxes)):
        name = f"{'rect' if lab == 0 else 'noise'}{i}"
        cv2.imwrite(str(root / "images" / f"{name}.png"), im[..., ::-1])
        if lab == 0:
            y0, x0, y1, x1 = (int(v) for v in b)
            regions[name] = {"x0": x0 - MARGIN, "y0": y0 - MARGIN, "x1": x1 + MARGIN,
                             "y1": y1 + MARGIN}
    (root / "masks" / "boxes.json").write_text(json.dumps(regions))
    return root


@pytest.fixture(scope="session")
def baseline(gate_dir, shapes_path):
    from onnxviz.cli import main

    out = gate_dir / "baseline"
    rc = main(["snapshot", str(shapes_path), str(gate_dir / "images"), "-m", METHODS,
               "--masks", str(gate_dir / "masks"), "--metric-option", "deletion.steps=16",
               "--out", str(out), "-q"])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def twins(gate_dir, shapes_path):
    """``{"int8": path, "reexport": path}``."""
    pytest.importorskip("torch")
    from onnxviz.convert.quantize import quantize
    from onnxviz.imageio import read_image

    calib = [read_image(str(p)) for p in sorted((gate_dir / "images").glob("*.png"))]
    out = {"int8": gate_dir / "shapes.int8.onnx", "reexport": gate_dir / "shapes.opset13.onnx"}
    quantize(str(shapes_path), out["int8"], "qdq", images=calib)
    reexport(shapes_path, out["reexport"], opset=13)
    return out


@pytest.fixture(scope="session")
def clever_hans(gate_dir):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = gate_dir / "clever_hans.onnx"
        train_clever_hans(path)
    finally:
        torch.set_num_threads(threads)
    return path
