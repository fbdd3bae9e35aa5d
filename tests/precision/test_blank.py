"""Never a blank map in silence (issue 20, section 1).

* The default gradient of a QDQ file (``ste-logit``) explains a logit that its output quantizer
  clips: checked against a torch fake-quantized twin of the graph before that quantizer.
* Forcing ``gradients="ste"`` (whose gradient of a clipped logit is zero), and on a float model
  whose ReLUs are all dead, every constant map carries ``extras["blank"]`` with the reason and a
  ``BlankMapWarning``, and is shown as such in the CLI line, the JSON record, the report card and
  the notebook caption (the server answer: ``tests/serve/test_blank_maps.py``).
* The bundled EfficientNet-Lite0 quantized to QDQ by ``onnxviz.convert.quantize`` as in the
  issue: its default saliency and Grad-CAM maps of coffee and chelsea are not blank.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings

import numpy as np
import onnx
import pytest

import onnxviz as ov
from onnxviz.errors import BlankMapWarning
from tests.precision.test_gradients import torch_twin
from tests.precision.tiny import cnn, images

GRADIENT_METHODS = ("saliency", "gradcam", "integrated_gradients")
BRIGHT = images(3, 0, 256, seed=2)  # past the range calibrated on dim images


class _Reader:
    def __init__(self, model, ims):
        x = model.preprocess(ims)
        self._feeds = iter([{model.input.name: x[k:k + 1]} for k in range(len(x))])

    def get_next(self):
        return next(self._feeds, None)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small CNN and its QDQ twin by ``onnxruntime.quantization.quantize_static`` (its
    defaults), calibrated on two dim images: the top logit of a bright image passes the range."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    folder = tmp_path_factory.mktemp("blank")
    src, qdq = folder / "float32.onnx", folder / "qdq.onnx"
    onnx.save(cnn(), str(src))
    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(src), str(qdq), _Reader(ov.load(src), images(2, 0, 80, seed=1)),
                    quant_format=QuantFormat.QDQ)
    return {"float32": src, "qdq": qdq}


@pytest.fixture(scope="module")
def dead(tmp_path_factory):
    """A float model whose ReLUs are all dead (first Conv's bias -100): no gradient anywhere."""
    path = tmp_path_factory.mktemp("dead") / "dead.onnx"
    onnx.save(cnn(bias=-100.0), str(path))
    return path


def _before_output_quantizer(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` ending at the tensor its trailing QuantizeLinear -> DequantizeLinear reads."""
    p = copy.deepcopy(proto)
    g = p.graph
    dq = next(n for n in g.node if n.output[0] == g.output[0].name)
    q = next(n for n in g.node if n.output[0] == dq.input[0])
    assert (dq.op_type, q.op_type) == ("DequantizeLinear", "QuantizeLinear")
    g.node.remove(dq)
    g.node.remove(q)
    g.output[0].name = q.input[0]
    return p


def _top_is_clipped(m, x) -> int:
    """The top class of every image, the same for all, whose logit sits at the bound."""
    scores = m.forward(x)
    (t,) = set(scores.argmax(1).tolist())
    assert np.all(scores[:, t] == scores.max()), "the logit is not at its quantizer's bound"
    return t


def test_default_gradient_of_a_clipped_logit_is_the_ste_gradient_before_its_quantizer(small):
    m = ov.load(small["qdq"], threads=2)
    assert m.gradient_mode == "ste-logit"
    x = m.preprocess(BRIGHT)
    t = _top_is_clipped(m, x)
    want = torch_twin(_before_output_quantizer(m.proto), x.astype(np.float64), t)
    g = m.grad(x, t)
    assert np.abs(want).max() > 0
    assert np.abs(g - want).max() <= 1e-4 * np.abs(want).max()
    # "ste" (quantization-aware training's definition) is the twin with the output quantizer
    ste = ov.load(small["qdq"], threads=2, gradients="ste")
    assert not np.any(torch_twin(ste.proto, x.astype(np.float64), t))
    assert not np.any(ste.grad(x, t))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_default_maps_of_a_clipped_logit_are_not_blank(small, method):
    m = ov.load(small["qdq"], threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BlankMapWarning)
        es = ov.explain(m, BRIGHT, method)
    for e in es:
        assert np.ptp(e.heatmap) > 0 and "blank" not in e.extras
        assert e.extras["gradients"] == "ste-logit"


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_forced_ste_blank_maps_carry_the_flag_the_reason_and_the_warning(small, method):
    m = ov.load(small["qdq"], threads=2, gradients="ste")
    bound = float(m.forward(m.preprocess(BRIGHT)).max())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        es = ov.explain(m, BRIGHT, method)
    blank = [e for e in es if np.ptp(e.heatmap) == 0]
    assert blank, "the clipped logit should have no STE gradient"
    for e in es:
        assert bool(e.extras.get("blank")) == (np.ptp(e.heatmap) == 0)
    for e in blank:
        why = e.extras["blank"]
        assert "all zero" in why and f"logit {e.target}" in why and "gradients ste" in why
        assert "'logits_QuantizeLinear'" in why and f"{bound:.4g}" in why
    warned = [w for w in caught if issubclass(w.category, BlankMapWarning)]
    assert len(warned) == len(blank)
    assert all(method in str(w.message) for w in warned)


@pytest.mark.parametrize("method", [*GRADIENT_METHODS, "occlusion"])
def test_dead_relu_float_model_maps_are_flagged_and_warned(dead, method):
    m = ov.load(dead, threads=2)
    img = images(1, 0, 256, seed=3)[0]
    with pytest.warns(BlankMapWarning, match=method):
        e = ov.explain(m, img, method, **({"patch": 4} if method == "occlusion" else {}))
    why = e.extras["blank"]
    assert why.startswith(("the map is all zero", "the map is constant"))
    if method in ("saliency", "integrated_gradients"):  # (Grad-CAM's layer is after the ReLU)
        assert f"the gradient of logit {e.target} is zero" in why and "gradients exact" in why
    assert e.to_dict()["extras"]["blank"] == why  # the JSON record
    from onnxviz.viz.notebook import caption_text, picture

    assert f"blank: {why}" in caption_text(e)
    k = picture(e).shape[0] // e.image.shape[0]  # small inputs are scaled up by a whole factor
    assert np.array_equal(picture(e)[::k, ::k], e.image)  # the photo alone, no finding painted


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_live_float_model_maps_are_not_flagged(method):
    m = ov.load(cnn().SerializeToString(), threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BlankMapWarning)
        e = ov.explain(m, images(1, 0, 256, seed=3)[0], method)
    assert "blank" not in e.extras


def _cli(argv, capsys):
    from onnxviz.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as err:
        code = err.code
    return (code, *capsys.readouterr())


def test_cli_line_json_record_and_report_card_say_blank(dead, tmp_path, capsys):
    import cv2

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), images(1, 0, 256, seed=3)[0])
    code, out, err = _cli(["explain", dead, img, "-m", "saliency", "-o", tmp_path / "a"], capsys)
    assert code == 0, err
    assert "not drawn: blank: the map is all zero" in out
    assert "warning" in err and "all zero" in err
    assert not list((tmp_path / "a").glob("*.png"))
    code, out, err = _cli(["explain", dead, img, "-m", "saliency", "-o", tmp_path / "b",
                           "--json"], capsys)
    assert code == 0, err
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["outputs"] == {} and rec["extras"]["blank"].startswith("the map is all zero")
    code, out, err = _cli(["report", dead, img, "-m", "saliency,gradcam", "--out",
                           tmp_path / "r"], capsys)
    assert code == 0, err
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.count('class="card failed"') == 2 and "blank: the map is all zero" in page


@pytest.fixture(scope="module")
def effnet_qdq(tmp_path_factory):
    """The bundled EfficientNet-Lite0 quantized to QDQ by onnxviz's converter on the issue's four
    calibration photos."""
    import skimage.data as d

    from onnxviz.convert.quantize import quantize

    path = tmp_path_factory.mktemp("effnet_qdq") / "qdq.onnx"
    logging.getLogger().setLevel(logging.ERROR)
    quantize(ov.bundled_model("efficientnet_lite0"), path, "qdq",
             images=[d.coffee(), d.chelsea(), d.astronaut(), d.rocket()])
    return path


def test_bundled_model_qdq_default_maps_are_not_blank_and_ste_says_why(effnet_qdq):
    import skimage.data as d

    m = ov.load(effnet_qdq, threads=2)
    photos = [d.coffee(), d.chelsea()]
    for method in ("saliency", "gradcam"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", BlankMapWarning)
            es = ov.explain(m, photos, method)
        assert all(np.ptp(e.heatmap) > 0 for e in es), method
    # forced STE: the top logit passes the output quantizer's range (10.84 here) -> blank, said
    m.gradient_mode = "ste"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        es = ov.explain(m, photos, "saliency")
    blank = [e for e in es if np.ptp(e.heatmap) == 0]
    assert blank
    assert all("'logits_QuantizeLinear'" in e.extras["blank"] for e in blank)
    assert sum(issubclass(w.category, BlankMapWarning) for w in caught) == len(blank)


def test_compare_shows_a_blank_map_as_the_photo_alone(dead):
    from onnxviz import viz

    img = images(1, 0, 256, seed=3)[0]
    with pytest.warns(BlankMapWarning):
        e = ov.explain(ov.load(dead, threads=2), img, "saliency")
    pic = viz.compare(img, [e], height=64)  # two 64 x 64 tiles, 2 pixels apart and around
    assert pic.shape[1] == 2 + 64 + 2 + 64 + 2
    low = slice(pic.shape[0] - 2 - 32, pic.shape[0] - 2)  # below the titles
    assert np.array_equal(pic[low, 2:66], pic[low, 68:132])


def test_onnxruntime_qoperator_pad_on_int8_has_a_surrogate(tmp_path):
    """onnxruntime's own QOperator form (no pre-processing) keeps a Pad on the int8 tensor, its
    constant the zero point: the surrogate pads with its real value, and its gradient is the
    float model's on the dequantized weights."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from tests.precision.test_gradients import _dequantized_float

    src, qop = tmp_path / "float32.onnx", tmp_path / "qop.onnx"
    onnx.save(cnn(pad=True), str(src))
    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(src), str(qop), _Reader(ov.load(src), images(4, 0, 256, seed=1)),
                    quant_format=QuantFormat.QOperator)
    assert "Pad" in {n.op_type for n in onnx.load(str(qop)).graph.node}
    m = ov.load(qop, threads=2)
    assert m.gradient_mode == "surrogate"
    x = m.preprocess(BRIGHT)
    g = m.grad(x, 0)
    want = ov.load(_dequantized_float(src, m.gradient_source()), threads=2).grad(x, 0)
    assert np.abs(want).max() > 0
    assert np.abs(g - want).max() <= 1e-4 * np.abs(want).max()
