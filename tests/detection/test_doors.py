"""The bundled detector and segmenter through every door but the server (issue 22): a result per
box or region from ``onnxviz explain`` (files, JSON records, the box drawn), the report's box
sections, ``evaluate`` per box, the gate per box, and the detector flags.

Each door's answer is compared with the library's own (``Model.predict``, ``ov.explain``): what
reaches the files is what the library found, box for box.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxviz as ov

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from viz_cli_helpers import cli  # noqa: E402


@pytest.fixture(scope="module")
def det():
    return ov.load(ov.bundled_model("shapes_detector"))


@pytest.fixture(scope="module")
def seg():
    return ov.load(ov.bundled_model("shapes_segmenter"))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, det):
    """Two scene files with two or more detections each, and their arrays."""
    from models.scenes import make_scenes

    d = tmp_path_factory.mktemp("scenes")
    data = make_scenes(16, seed=12)
    out = []
    for i, img in enumerate(data.images):
        if len(det.predict(img)) >= 2:
            p = d / f"scene{i}.png"
            cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            out.append((p, img))
        if len(out) == 2:
            return out
    raise AssertionError("no two scenes with two detections")


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_explain_writes_a_result_per_box(det, scenes, tmp_path, capsys):
    (path, img), _ = scenes
    code, out, err = cli(["explain", ov.bundled_model("shapes_detector"), path, "-m", "gradcam",
                          "--json", "--out", tmp_path, "-q"], capsys)
    assert code == 0, err
    recs = _records(out)
    found = det.predict(img)
    assert len(recs) == len(found) >= 2
    library = ov.explain(det, img, "gradcam")
    for k, (r, e) in enumerate(zip(recs, library)):
        assert r["method"] == "gradcam" and r["label"] == found.labels[k]
        assert r["box"] == pytest.approx(found.xyxy[k].tolist(), abs=0.01)
        assert r["score"] == pytest.approx(float(found.confidence[k]), rel=1e-6)
        assert r["score_kind"] == "confidence" and r["region"] is None
        assert r["outputs"]["overlay"].endswith(f"{path.stem}.box{k}.gradcam.overlay.png")
        assert r["outputs"]["boxes"].endswith(f"{path.stem}.gradcam.boxes.png")
        heat = cv2.imread(r["outputs"]["heatmap"])
        assert heat.shape[:2] == e.heatmap.shape
        # the box is drawn on the overlay: white on its top edge, which the plain overlay is not
        over = cv2.cvtColor(cv2.imread(r["outputs"]["overlay"]), cv2.COLOR_BGR2RGB)
        plain = ov.viz.overlay(img, e.heatmap)
        x0, y0, x1, _ = (int(round(v)) for v in r["box"])
        row = slice(max(x0, 0) + 2, min(x1, img.shape[1] - 1) - 2)
        y = min(max(y0, 0), img.shape[0] - 1)
        assert (over[y, row] == 255).all() and not (plain[y, row] == 255).all()
    grid = cv2.imread(recs[0]["outputs"]["boxes"])
    assert grid is not None and grid.shape[1] > img.shape[1]  # the boxes side by side


def test_detector_flags_pick_the_boxes(det, scenes, tmp_path, capsys):
    """--score-threshold, --iou-threshold and --max-detections reach the NMS: each run explains
    exactly the detections ``predict`` finds with the same settings."""
    (path, img), _ = scenes
    model = ov.bundled_model("shapes_detector")
    runs = {"--score-threshold": ("score_threshold", "0.9"),
            "--iou-threshold": ("iou_threshold", "0.95"),
            "--max-detections": ("max_detections", "1")}
    default = len(det.predict(img))
    changed = 0
    for flag, (name, value) in runs.items():
        code, out, err = cli(["explain", model, path, "-m", "saliency", "--json", "-q", flag,
                              value, "--out", tmp_path / name], capsys)
        assert code == 0, err
        want = det.predict(img, **{name: int(value) if name == "max_detections" else
                                   float(value)})
        boxes = np.asarray([r["box"] for r in _records(out)]).reshape(-1, 4)
        np.testing.assert_allclose(boxes, want.xyxy, atol=0.01, err_msg=flag)
        changed += len(boxes) != default
    assert changed >= 2  # the flags changed what was explained


def test_a_users_box_and_the_bad_ones(det, scenes, tmp_path, capsys):
    (path, img), _ = scenes
    model = ov.bundled_model("shapes_detector")
    found = det.predict(img)
    box, label = found.xyxy[0].round(1).tolist(), found.labels[0]
    text = ",".join(f"{v:g}" for v in box)
    code, out, err = cli(["explain", model, path, "-m", "saliency", "--json", "-q", "--box",
                          text, "--target", label, "--out", tmp_path], capsys)
    assert code == 0, err
    (r,) = _records(out)
    (e,) = ov.explain(det, img, "saliency", target={"box": box, "label": label})
    assert r["box"] == pytest.approx(box) and r["label"] == label
    assert r["outputs"]["overlay"].endswith(f"{path.stem}.box.saliency.overlay.png")
    code, _, err = cli(["explain", model, path, "-m", "saliency", "-q", "--box", text,
                        "--target", label, "--npy", "--out", tmp_path / "npy"], capsys)
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "npy" / f"{path.stem}.box.saliency.heatmap.npy"),
                               e.heatmap, rtol=1e-6, atol=1e-7)
    bad = [
        (["--box", "0,0,500,10", "--target", label], "outside the 96x96 image"),
        (["--box", text, "--target", "hexagon"], "unknown class 'hexagon'"),
        (["--box", "1,2,3", "--target", label], "four numbers"),
        (["--box", text], "needs the box's class"),
        (["--target", "99"], "detection 99 does not exist"),
        (["--mask", str(path), "--target", label], "--mask is for segmenters"),
    ]
    for extra, words in bad:
        code, out, err = cli(["explain", model, path, "-m", "saliency", "-q", "--out",
                              tmp_path / "bad", *extra], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (extra, err)


def test_classifier_refuses_the_detector_flags(tmp_path, capsys):
    code, _, err = cli(["explain", ov.bundled_model("shapes_cnn"), "skimage:camera", "-m",
                        "saliency", "--score-threshold", "0.5", "--out", tmp_path], capsys)
    assert code == 2 and "are for detectors; this model is a classifier" in err
    code, _, err = cli(["explain", ov.bundled_model("shapes_cnn"), "skimage:camera", "-m",
                        "saliency", "--box", "1,1,5,5", "--target", "0", "--out", tmp_path],
                       capsys)
    assert code == 2 and "--box is for detectors" in err


def test_segmenter_regions_and_a_users_mask(seg, scenes, tmp_path, capsys):
    (path, img), _ = scenes
    model = ov.bundled_model("shapes_segmenter")
    code, out, err = cli(["explain", model, path, "-m", "saliency", "--json", "-q", "--out",
                          tmp_path], capsys)
    assert code == 0, err
    recs = _records(out)
    areas = {r["label"]: r["area"] for r in seg.predict(img).records()}
    assert {r["label"] for r in recs} == set(areas)
    for r in recs:
        assert r["box"] is None and r["region"]["source"] == "predicted"
        assert r["region"]["area"] == pytest.approx(areas[r["label"]], abs=1e-6)
        assert r["score_kind"] == "logit sum"
        name = f"{path.stem}.{r['label']}.saliency.overlay.png"
        assert Path(r["outputs"]["overlay"]).name == name
    shape = next(r["label"] for r in recs if r["label"] != "background")
    classes = seg.predict(img).class_map
    mask = np.where(classes == seg.labels.index(shape), 255, 0).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    code, out, err = cli(["explain", model, path, "-m", "saliency", "--json", "-q", "--mask",
                          tmp_path / "mask.png", "--target", shape, "--out", tmp_path], capsys)
    assert code == 0, err
    (r,) = _records(out)
    assert r["label"] == shape and r["region"]["source"] == "mask"
    cv2.imwrite(str(tmp_path / "small.png"), mask[:40, :40])
    code, _, err = cli(["explain", model, path, "-m", "saliency", "-q", "--mask",
                        tmp_path / "small.png", "--target", shape, "--out", tmp_path], capsys)
    assert code == 2 and "the region mask has shape (40, 40)" in err


def test_report_has_a_section_per_box(det, scenes, tmp_path, capsys):
    (path, img), _ = scenes
    code, _, err = cli(["report", ov.bundled_model("shapes_detector"), path, "-m",
                        "gradcam,odam", "--out", tmp_path, "-q"], capsys)
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    found = det.predict(img)
    for k in range(len(found)):
        box = ", ".join(f"{v:.0f}" for v in found.xyxy[k])
        assert f"box {k}: {found.labels[k]} [{box}]" in page
    assert page.count("<h2>") == len(found) + 3  # + timings, settings, model


def test_evaluate_scores_each_box_on_its_own(det, scenes, tmp_path, capsys):
    """The pointing game of a box is played on its own box; deletion on its own confidence."""
    (path, img), _ = scenes
    code, out, err = cli(["evaluate", ov.bundled_model("shapes_detector"), path, "-m", "odam",
                          "--metrics", "pointing_game,deletion", "--out", tmp_path, "-q",
                          "--json"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "metrics.json").read_text())
    recs = doc["records"]
    library = ov.explain(det, img, "odam")
    assert len(recs) == len(library)
    for r, e in zip(recs, library):
        assert r["box"] == pytest.approx(e.box)
        h = e.heatmap
        x0, y0, x1, y1 = e.extras["input_box"]
        box = np.zeros(h.shape, bool)
        box[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
        if h.max() == h.min():  # a blank map points nowhere
            assert r["metrics"]["pointing_game"] is None
        else:
            assert r["metrics"]["pointing_game"] == float((box & (h == h.max())).any())
        first = r["details"]["deletion"]["y"][0]
        assert first == pytest.approx(e.score, rel=1e-6)  # it starts at the box's confidence
    assert (tmp_path / "metrics_per_image.csv").read_text().splitlines()[0].split(",")[5] == "box"
    code, _, err = cli(["evaluate", ov.bundled_model("shapes_detector"), path, "-m", "odam",
                        "--masks", tmp_path, "--out", tmp_path / "m", "-q"], capsys)
    assert code == 2 and "each box of a detector is the region of its own pointing game" in err


def _without_class(path: Path, out: Path, cls: int) -> Path:
    """The detector with one class never scored (its logit bias at -30 at every level)."""
    m = onnx.load(str(path))
    inits = {t.name: t for t in m.graph.initializer}
    changed = 0
    for n in (n for n in m.graph.node if n.op_type == "Conv"):
        if len(n.input) < 3 or n.input[2] not in inits:
            continue
        b = numpy_helper.to_array(inits[n.input[2]]).copy()
        if b.shape == (7,):  # a head's 1x1 conv: 4 box sides + 3 classes
            b[4 + cls] = -30.0
            inits[n.input[2]].CopyFrom(numpy_helper.from_array(b, n.input[2]))
            changed += 1
    assert changed == 2
    onnx.save(m, str(out))
    return out


def test_gate_holds_each_box(det, scenes, tmp_path, capsys):
    (path, img), (path2, img2) = scenes
    model = ov.bundled_model("shapes_detector")
    code, _, err = cli(["snapshot", model, path, path2, "-m", "odam", "--out",
                        tmp_path / "base", "-q"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "base" / "manifest.json").read_text())
    n = len(det.predict(img)) + len(det.predict(img2))
    assert len(doc["records"]) == n and all(r["item"].startswith("box") for r in doc["records"])
    code, out, err = cli(["check", model, path, path2, "--baseline", tmp_path / "base", "--out",
                          tmp_path / "same", "-q"], capsys)
    assert code == 0 and f"PASSED: {n} of {n}" in out, out + err
    first = doc["records"][0]
    gone = _without_class(Path(model), tmp_path / "blind.onnx",
                          det.labels.index(first["label"]))
    code, out, err = cli(["check", gone, path, path2, "--baseline", tmp_path / "base", "--out",
                          tmp_path / "blind", "-q", "--json"], capsys)
    assert code == 1, err
    result = json.loads((tmp_path / "blind" / "check.json").read_text())
    failed = [c for c in result["cases"] if not c["passed"]]
    assert failed and all(c["label"] == first["label"] for c in failed)
    assert all(any(v["rule"] == "prediction" and v["passed"] is False for v in c["rules"])
               for c in failed)
