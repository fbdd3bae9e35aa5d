"""``onnxviz evaluate`` on the bundled shapes CNN: table, files, report section, bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from onnxviz.cli import main
from tests.gate.clever_hans import gate_images


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    images, labels, boxes = gate_images(4, seed=21)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    found = {}
    for i, (im, lab, b) in enumerate(zip(images, labels, boxes)):
        cv2.imwrite(str(root / "images" / f"im{i}.png"), im[..., ::-1])
        if lab == 0:
            found[f"im{i}"] = {"y0": int(b[0]), "x0": int(b[1]), "y1": int(b[2]),
                               "x1": int(b[3])}
    (root / "masks" / "boxes.json").write_text(json.dumps(found))
    return root, labels


def test_evaluate_writes_table_json_csv_and_report(data, shapes_path, capsys):
    root, labels = data
    out = root / "out"
    rc = main(["evaluate", str(shapes_path), str(root / "images"), "-m", "gradcam,saliency",
               "--metrics", "deletion,insertion,pointing_game,energy_pointing_game,sparseness",
               "--metric-option", "deletion.steps=8", "--metric-option", "insertion.steps=8",
               "--masks", str(root / "masks"), "--out", str(out), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["method", "deletion", "↓"]
    assert {"gradcam", "saliency"} <= {line.split()[0] for line in text.splitlines()[2:]}
    doc = json.loads((out / "metrics.json").read_text())
    assert len(doc["records"]) == 8 and doc["metric_options"]["deletion"] == {"steps": 8}
    rec = doc["records"][0]
    assert len(rec["details"]["deletion"]["y"]) == 9
    with_mask = [r for r in doc["records"] if r["metrics"]["pointing_game"] is not None]
    assert len(with_mask) == 2 * int((labels == 0).sum())
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("method,metric,n,mean,ci95_low,ci95_high")
    assert len(rows) == 1 + 2 * 5
    html = (out / "report.html").read_text()
    assert 'id="metrics"' in html and html.count("<svg") == 2 and "deletion AUC" in html
    assert (out / "metrics_per_image.csv").read_text().count("\n") == 9


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "delete"], "unknown metric 'delete'"),
    (["--metric-option", "deletion.step=3"], "has no option 'step'"),
    (["--metric-option", "deletion.steps=many"], "--steps expects an integer"),
    (["--metric-option", "steps=3"], "METRIC.OPTION=VALUE"),
    (["--masks", "/nonexistent"], "masks folder not found"),
])
def test_bad_input_is_one_line_and_exit_2(data, shapes_path, capsys, argv, message):
    root, _ = data
    rc = main(["evaluate", str(shapes_path), str(root / "images"), "-m", "gradcam",
               "--out", str(root / "bad"), *argv])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
