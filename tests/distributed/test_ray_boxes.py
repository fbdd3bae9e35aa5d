"""The Ray engine on the bundled detector (issue 22): a Parquet row per image, box and method,
equal to ``ov.explain`` box for box (map, box, score, class), the PNGs named as the local engine
names them, and a detector's NMS options reaching the actors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnxviz as ov

OPTIONS = {"gradcam": {}, "drise": {"num_masks": 64, "seed": 5}}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    import cv2

    from models.scenes import make_scenes

    folder = tmp_path_factory.mktemp("scenes")
    data = make_scenes(3, seed=12)
    paths = []
    for i, img in enumerate(data.images):
        p = folder / f"scene{i}.png"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    return paths


def test_a_row_per_box_equal_to_the_library(ray_cluster, scenes, tmp_path):
    from onnxviz.distributed import explain_dataset, read_results

    path = str(ov.bundled_model("shapes_detector"))
    m = ov.load(path)
    want = {(p, name): ov.explain(m, p, method=name, score_threshold=0.5, **opts)
            for p in scenes for name, opts in OPTIONS.items()}
    s = explain_dataset(path, scenes, out=tmp_path / "run", methods=list(OPTIONS),
                        options=OPTIONS, workers=1, batch_size=2, progress=False,
                        nms={"score_threshold": 0.5})
    n = sum(len(v) for v in want.values())
    assert (s.explained, s.errors) == (n, 0) and n > 2 * len(OPTIONS)
    assert s.done == len(scenes) * len(OPTIONS)  # the rates count images, not boxes
    table = read_results(tmp_path / "run")
    rows = table.to_pylist()
    maps = table["heatmap"].combine_chunks().to_numpy_ndarray()
    seen: dict = {}
    for row, heat in zip(rows, maps):
        k = seen.setdefault((row["image"], row["method"]), [])
        e = want[(row["image"], row["method"])][len(k)]
        k.append(row)
        assert np.array_equal(heat, e.heatmap), (row["image"], row["method"], len(k))
        assert row["box"] == e.box and (row["target"], row["label"]) == (e.target, e.label)
        assert row["score"] == e.score and row["score_kind"] == "confidence"
        assert row["region"] is None
        outputs = dict(row["outputs"])
        stem = row["image"].rsplit("/", 1)[1][:-4]
        assert outputs["overlay"].endswith(f"{stem}.box{len(k) - 1}.{row['method']}.overlay.png")
        assert outputs["boxes"].endswith(f"{stem}.{row['method']}.boxes.png")
        assert (tmp_path / "run" / "png" / outputs["overlay"].rsplit("/", 1)[1]).is_file()
    assert {k: len(v) for k, v in seen.items()} == {k: len(v) for k, v in want.items()}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["nms"] == {"score_threshold": 0.5}


def test_nms_options_refused_for_a_classifier(ray_cluster, tmp_path):
    from onnxviz.distributed import explain_dataset
    from onnxviz.errors import OptionError

    with pytest.raises(OptionError, match="are for detectors; this model is a classifier"):
        explain_dataset(str(ov.bundled_model("shapes_cnn")), [], out=tmp_path / "x",
                        methods="gradcam", nms={"max_detections": 3}, progress=False)
