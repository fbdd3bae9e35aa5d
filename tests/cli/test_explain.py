"""``onnxviz explain`` and friends, on a tiny inline model: every registered method, the files
written, the JSON, options reaching the explainer, and user errors as one line with exit 2."""

from __future__ import annotations

import inspect
import json

import cv2
import numpy as np
import pytest
from viz_cli_helpers import LABELS, LIGHT, photo, write_png, write_tiny_model

import onnxviz as ov
from onnxviz import viz
from onnxviz.cli import main
from onnxviz.cli.options import add_method_options
from onnxviz.explainers import options as opts
from onnxviz.errors import OptionError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return write_tiny_model(d / "tiny.onnx")


@pytest.fixture(scope="module")
def img_file(tmp_path_factory):
    return write_png(tmp_path_factory.mktemp("img") / "pic.png", photo())


def cli(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def read_png(path):
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


CNN_METHODS = [m for m in ov.METHODS if ov.explainers.get(m).family != "attention"
               and "classify" in ov.explainers.get(m).tasks
               and not getattr(ov.explainers.get(m), "boxes_only", False)]


@pytest.mark.parametrize("method", CNN_METHODS)
def test_every_method_writes_pngs_and_json(method, tiny, img_file, tmp_path, capsys):
    code, out, err = cli(["explain", tiny, img_file, "-m", method, "-o", tmp_path, "--json",
                          "--npy", *LIGHT.get(method, [])], capsys)
    assert code == 0, err
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["method"] == method and rec["image"] == str(img_file)
    assert rec["label"] == LABELS[rec["target"]] and "total" in rec["timings"]
    overlay, mask, heat = (read_png(rec["outputs"][k]) for k in ("overlay", "mask", "heatmap"))
    assert overlay.shape == mask.shape == (40, 56, 3)  # the original image's size
    assert heat.shape == (32, 32, 3)  # the model's input size
    hm = np.load(rec["outputs"]["heatmap_npy"])
    np.testing.assert_array_equal(heat, viz.apply_colormap(hm, "jet", clip_percent=1))
    np.testing.assert_array_equal(overlay, viz.overlay(photo(), hm, alpha=0.4, cmap="jet",
                                                       clip_percent=1))
    if method == "lime":
        assert read_png(rec["outputs"]["superpixels"]).shape == (40, 56, 3)


def test_cli_equals_the_api_with_the_same_options(tiny, img_file, tmp_path, capsys):
    code, out, err = cli(["explain", tiny, img_file, "-m", "occlusion", "--patch", "8,16",
                          "--stride", "4", "--fill", "0", "--target", "blue", "-o", tmp_path,
                          "--json", "--npy"], capsys)
    assert code == 0, err
    rec = json.loads(out)
    assert rec["params"]["patch"] == [8, 16] and rec["params"]["stride"] == 4
    assert rec["target"] == 2
    m = ov.load(str(tiny))
    e = ov.explain(m, photo(), "occlusion", target="blue", patch=(8, 16), stride=4, fill=0.0)
    np.testing.assert_allclose(np.load(rec["outputs"]["heatmap_npy"]), e.heatmap, rtol=0, atol=1e-7)
    default = ov.explain(m, photo(), "occlusion", target="blue")
    assert not np.allclose(default.heatmap, e.heatmap)  # the options really changed something


def test_folder_input_duplicate_stems_and_mask_options(tiny, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write_png(a / "x.png", photo(seed=1))
    write_png(a / "y.jpg", photo(seed=2))
    (a / "notes.txt").write_text("not an image")
    write_png(b / "x.png", photo(seed=3))
    code, out, err = cli(["explain", tiny, a, b / "x.png", "-m", "gradcam,saliency", "-o",
                          tmp_path / "out", "--json", "--top-percent", "10"], capsys)
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 6
    overlays = sorted(r["outputs"]["overlay"].rsplit("/", 1)[1] for r in recs)
    assert overlays == sorted(f"{s}.{m}.overlay.png" for s in ("x", "y", "x-2")
                              for m in ("gradcam", "saliency"))
    kept = (read_png(recs[0]["outputs"]["mask"]).sum(axis=2) > 0).mean()
    assert kept <= 0.10 + 1e-9


@pytest.mark.parametrize("argv,needle", [
    (["-m", "gradcamm"], "choose from: gradcam"),
    (["-m", "saliency", "--layer", "conv"], "has no option --layer"),
    (["-m", "gradcam", "--layer", "conf"], "conv"),
    (["-m", "occlusion", "--stride", "two"], "--stride expects an integer"),
    (["-m", "occlusion", "--patch", "4,4,4,x"], "--patch expects"),
    (["-m", "saliency", "--target", "7"], "7"),
    (["-m", "saliency", "--target", "purple"], "purple"),
    (["-m", "saliency", "--alpha", "2"], "--alpha"),
    (["-m", "smoothgrad", "--noise", "nan"], "finite"),
])
def test_user_errors_are_one_line_and_exit_2(argv, needle, tiny, img_file, tmp_path, capsys):
    code, out, err = cli(["explain", tiny, img_file, "-o", tmp_path, *argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnxviz: error:"), err
    assert needle in lines[0]


def test_missing_and_bad_files(tiny, img_file, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for argv in (["explain", tmp_path / "nope.onnx", img_file, "-m", "gradcam"],
                 ["explain", tiny, tmp_path / "nope.png", "-m", "gradcam"],
                 ["explain", tiny, bad, "-m", "gradcam"],
                 ["explain", img_file, img_file, "-m", "gradcam"]):
        code, out, err = cli([*argv, "-o", tmp_path / "o"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


class _Fake:
    def __init__(self, model, *, stride: int = 8, sigma: float = 0.5, patch: int | tuple = 4,
                 baseline: str | float = "black", layer: str | None = None, signed: bool = False):
        pass


@pytest.mark.parametrize("opt,raw,want", [
    ("stride", "3", 3), ("sigma", "2", 2.0), ("sigma", "1e-3", 1e-3), ("patch", "5", 5),
    ("patch", "5,7", (5, 7)), ("baseline", "0.5", 0.5), ("baseline", "blur", "blur"),
    ("layer", "blocks.0", "blocks.0"), ("signed", True, True), ("signed", "no", False),
])
def test_convert_follows_defaults_and_annotations(opt, raw, want):
    p = inspect.signature(_Fake).parameters[opt]
    got = opts.convert(raw, p, opt)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("opt,raw", [("stride", "3.5"), ("stride", "1,2"), ("sigma", "inf"),
                                     ("sigma", "x"), ("signed", "maybe"), ("layer", " ")])
def test_convert_rejects_with_option_error(opt, raw):
    with pytest.raises(OptionError, match=opt):
        opts.convert(raw, inspect.signature(_Fake).parameters[opt], opt)


def test_every_registered_option_has_a_flag():
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--batch-size")
    p.add_argument("--alpha")
    dests = add_method_options(p)
    table = opts.option_table()
    assert set(dests) == set(table)
    flags = set(p._option_string_actions)
    for opt, uses in table.items():
        assert opts.flag(opt) in flags or any(opts.flag(f"{m}_{opt}") in flags for m, _ in uses) \
            or opts.flag(f"method_{opt}") in flags


def test_report_bench_activations(tiny, img_file, tmp_path, capsys):
    html = tmp_path / "r.html"
    code, out, err = cli(["report", tiny, img_file, "-m", "gradcam,occlusion,cam", "--patch", "8",
                          "--stride", "8", "-o", html], capsys)
    assert code == 0, err
    text = html.read_text()
    assert out.strip() == str(html)
    assert all(f'data-method="{m}"' in text for m in ("gradcam", "occlusion", "cam"))
    assert "patch=8" in text and "Top-3 prediction" in text
    code, out, err = cli(["bench", tiny, "-m", "gradcam,saliency", "--images", "2", "--image",
                          img_file, "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["method"] for r in rows] == ["forward (floor)", "gradcam", "saliency"]
    assert all(r["images_per_s"] > 0 for r in rows)
    code, out, err = cli(["bench", tiny, "-m", "occlusion", "--quick", "--stride", "4", "--image",
                          img_file, "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert rows[1]["params"] == {"patch": 32, "stride": 4} and rows[1]["images"] == 1
    code, out, err = cli(["activations", tiny, img_file, "-l", "relu", "--channels", "0-2",
                          "-o", tmp_path, "--json"], capsys)
    assert code == 0, err
    rec = json.loads(out)
    assert rec["shape"] == [4, 32, 32]
    grid = read_png(rec["output"])
    acts = ov.activations(ov.load(str(tiny)), photo(), layers=["relu"])["relu"]
    assert grid.shape == viz.activation_grid(acts, channels=[0, 1, 2], titles=True).shape


def test_filters_and_dream(tiny, img_file, tmp_path, capsys):
    code, out, err = cli(["filters", tiny, "-l", "relu", "--channels", "0,2", "--steps", "3",
                          "-o", tmp_path, "--json"], capsys)
    assert code == 0, err
    rec = json.loads(out)
    assert rec["channels"] == [0, 2] and rec["params"] == {"steps": 3}
    assert read_png(rec["images"][0]).shape == (32, 32, 3)
    code, out, err = cli(["dream", tiny, img_file, "-l", "relu", "--octaves", "2", "--steps", "2",
                          "-o", tmp_path, "--json"], capsys)
    assert code == 0, err
    assert read_png(json.loads(out)["output"]).shape == (32, 32, 3)


def test_docs_cli_reference_is_generated_from_the_registry():
    import importlib.util
    from pathlib import Path

    tool = Path(__file__).resolve().parents[2] / "tools" / "gen_cli_reference.py"
    spec = importlib.util.spec_from_file_location("gen_cli_reference", tool)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    table = gen.reference()
    for m in ov.METHODS:
        assert f"| `{m}` |" in table
    assert "`--lime-alpha 1.0`" in table and "`--patch 32`" in table
    assert gen.block() in gen.DOC.read_text(encoding="utf-8"), \
        f"{gen.DOC.name} is out of date: run python tools/gen_cli_reference.py --write"


@pytest.mark.parametrize("method", [m for m in ov.METHODS
                                    if ov.explainers.get(m).family == "attention"])
def test_attention_methods_from_the_cli(method, repo_root, tmp_path, capsys):
    """The attention family on the bundled shapes ViT; on a CNN, naming one is a one-line error
    and ``all`` skips it (Explainer.applies_to)."""
    vit = repo_root / "onnxviz" / "data" / "models" / "shapes_vit.onnx"
    img = write_png(tmp_path / "pic.png", photo())
    code, out, err = cli(["explain", vit, img, "-m", method, "-o", tmp_path / "out", "--json"],
                         capsys)
    assert code == 0, err
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["method"] == method and rec["extras"]["grid"] == [8, 8]
    cnn = repo_root / "onnxviz" / "data" / "models" / "shapes_cnn.onnx"
    code, out, err = cli(["explain", cnn, img, "-m", method, "-o", tmp_path / "cnn"], capsys)
    assert code == 2 and "no attention" in err and len(err.strip().splitlines()) == 1
    model = ov.load(cnn)
    assert method not in opts.for_model(opts.parse_methods("all"), "all", model)
    assert opts.for_model([method], method, model) == [method]


def test_auto_is_the_default_the_help_shows():
    """Options whose default is None are shown as ``auto`` (help, docs/cli.md); ``auto`` given
    on the command line is that default, not a layer or rule called "auto"."""
    from onnxviz.explainers.options import method_kwargs

    assert method_kwargs("gradcam", {"layer": "auto"}) == {"layer": None}
    assert method_kwargs("lrp", {"dense_rule": "auto", "first_rule": "AUTO"}) == {
        "dense_rule": None, "first_rule": None}
    assert method_kwargs("gradcam", {"layer": "features.3"}) == {"layer": "features.3"}
