"""The proof of the explanation-regression gate: the original passes against its own baseline,
so do its int8 and re-exported twins, and the Clever Hans copy (same predictions, but looking at
the corner watermark) fails on the region rule with the rectangle images named."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from onnxviz.cli import main


def check(model, gate_dir, baseline, out, *extra):
    return main(["check", str(model), str(gate_dir / "images"), "--baseline", str(baseline),
                 "--out", str(gate_dir / out), "-q", *extra])


def test_original_passes_against_its_own_baseline(gate_dir, baseline, shapes_path, capsys):
    assert check(shapes_path, gate_dir, baseline, "self") == 0
    out = capsys.readouterr().out
    assert "PASSED: 12 of 12" in out
    doc = json.loads((gate_dir / "self" / "check.json").read_text())
    assert doc["passed"] and not doc["failures"]
    roi = [r for c in doc["cases"] for r in c["rules"] if r["rule"] == "roi"]
    assert sum(r["passed"] is True for r in roi) == 2 * 3  # three rectangle images, two methods
    assert not (gate_dir / "self" / "diff").exists()


#: Thresholds for an int8 twin, measured on these images: int8 moves the saliency maps of the
#: noise (rank correlation 0.64-0.77 against the float baseline) and Grad-CAM's top 10 % on the
#: images without a rectangle, where no region matters (IoU 0.38-0.82). The rectangle images'
#: maps and every prediction stay put.
INT8_TOML = """
[rules.top_overlap]
min = 0.3
[methods.saliency.rules.rank_correlation]
min = 0.6
"""


def test_reexported_twin_passes_the_defaults(gate_dir, baseline, twins, capsys):
    assert check(twins["reexport"], gate_dir, baseline, "twin-re") == 0, capsys.readouterr().out
    doc = json.loads((gate_dir / "twin-re" / "check.json").read_text())
    rho = [r["value"] for c in doc["cases"] for r in c["rules"]
           if r["rule"] == "rank_correlation"]
    assert min(rho) > 0.99


def test_int8_twin_passes_a_quantization_config(gate_dir, baseline, twins, tmp_path, capsys):
    (tmp_path / "int8.toml").write_text(INT8_TOML)
    assert check(twins["int8"], gate_dir, baseline, "twin-int8", "--config",
                 str(tmp_path / "int8.toml")) == 0, capsys.readouterr().out
    assert check(twins["int8"], gate_dir, baseline, "twin-int8-defaults") == 1
    doc = json.loads((gate_dir / "twin-int8-defaults" / "check.json").read_text())
    assert set(doc["failures"]) <= {"rank_correlation", "top_overlap"}


def test_clever_hans_fails_on_the_region_rule(gate_dir, baseline, clever_hans, capsys):
    (gate_dir / "int8.toml").write_text(INT8_TOML)  # the int8 twin's config does not save it
    assert check(clever_hans, gate_dir, baseline, "hans", "--config",
                 str(gate_dir / "int8.toml")) == 1
    out = capsys.readouterr().out
    rect = sorted(p.stem for p in (gate_dir / "images").glob("rect*.png"))
    roi_line = next(line for line in out.splitlines() if line.startswith("FAIL roi:"))
    assert sorted(roi_line.split(":", 1)[1].replace(",", " ").split()) == rect
    doc = json.loads((gate_dir / "hans" / "check.json").read_text())
    assert sorted(doc["failures"]["roi"]) == rect
    pred = [r for c in doc["cases"] for r in c["rules"] if r["rule"] == "prediction"]
    assert all(r["passed"] for r in pred)  # it predicts as well as the original
    suite = ET.parse(gate_dir / "hans" / "junit.xml").getroot()
    failed = {(tc.get("classname"), tc.get("name")) for tc in suite.iter("testcase")
              if any(f.get("type") == "roi" for f in tc.findall("failure"))}
    assert {n for _, n in failed} == set(rect)
    assert suite.get("failures") != "0"
    for name in rect:
        page = (gate_dir / "hans" / "diff" / f"{name}.html").read_text()
        assert page.count("<img") >= 4 and "roi</b> FAIL" in page


def test_config_thresholds_decide(gate_dir, baseline, clever_hans, tmp_path):
    lenient = tmp_path / "gate.toml"
    lenient.write_text("[rules.roi]\nmax_outside = 1.0\n[rules.rank_correlation]\nmin = -1\n"
                       "[rules.top_overlap]\nenabled = false\n[rules.deletion]\n"
                       "max_increase = 1.0\n")
    assert check(clever_hans, gate_dir, baseline, "lenient", "--config", str(lenient)) == 0
    strict = tmp_path / "strict.toml"
    strict.write_text("[methods.gradcam.rules.rank_correlation]\nmin = 1.01\n")
    assert check(_original(), gate_dir, baseline, "strict", "--config", str(strict)) == 1
    doc = json.loads((gate_dir / "strict" / "check.json").read_text())
    assert set(doc["failures"]) == {"rank_correlation"}
    assert {c["method"] for c in doc["cases"] if not c["passed"]} == {"gradcam"}


def _original():
    from onnxviz import bundled_model

    return bundled_model("shapes_cnn")


@pytest.mark.parametrize("setup, message", [
    ("unknown_rule", "unknown gate rule 'roii'"),
    ("unknown_setting", "rule 'roi' has no setting 'max'"),
    ("bad_value", "must be a number"),
    ("bad_toml", "is not valid TOML"),
    ("no_baseline", "no baseline in"),
    ("other_image", "is not in the baseline"),
])
def test_bad_input_exits_2(gate_dir, baseline, shapes_path, tmp_path, capsys, setup, message):
    import cv2
    import numpy as np

    images, extra = str(gate_dir / "images"), []
    texts = {"unknown_rule": "[rules.roii]\nmax_outside = 1\n",
             "unknown_setting": "[rules.roi]\nmax = 1\n",
             "bad_value": "[rules.roi]\nmax_outside = 'high'\n",
             "bad_toml": "[rules.roi\n"}
    base = str(baseline)
    if setup in texts:
        (tmp_path / "g.toml").write_text(texts[setup])
        extra = ["--config", str(tmp_path / "g.toml")]
    elif setup == "no_baseline":
        base = str(tmp_path)
    else:
        cv2.imwrite(str(tmp_path / "stranger.png"), np.zeros((64, 64, 3), np.uint8))
        images = str(tmp_path / "stranger.png")
    rc = main(["check", str(shapes_path), images, "--baseline", base,
               "--out", str(tmp_path / "o"), *extra])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
