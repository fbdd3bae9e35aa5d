"""The public entry point: ov.METHODS, ov.explain's argument checks, and the lazy API."""

from __future__ import annotations

import numpy as np
import pytest

import onnxviz as ov
from onnxviz.explainers import get

CARD_ORDER = ("occlusion", "lime", "rise", "kernelshap", "drise", "saliency", "smoothgrad",
              "integrated_gradients", "gradient_x_input", "cam", "gradcam", "gradcam++",
              "hirescam", "odam", "xgradcam", "layercam", "scorecam", "eigencam", "eigengradcam",
              "gradcam_elementwise", "ablationcam", "fullgrad", "attention_rollout",
              "attention_gradient", "guided_backprop", "deconvolution", "guided_gradcam",
              "deeplift", "deeplift_shap", "lrp", "gradient_shap")


def test_methods_are_the_design_cards_list():
    assert ov.METHODS == CARD_ORDER


@pytest.fixture(scope="module")
def shapes(shapes_path):
    return ov.load(shapes_path)


def test_unknown_method_suggests_close_names(shapes):
    with pytest.raises(ov.OptionError, match="gradcam"):
        ov.explain(shapes, np.zeros((64, 64, 3), np.uint8), method="gradcamm")


def test_unknown_option_lists_the_methods_options(shapes):
    with pytest.raises(ov.OptionError, match="stride") as err:
        ov.explain(shapes, np.zeros((64, 64, 3), np.uint8), method="occlusion", strid=4)
    assert "strid" in str(err.value)


@pytest.mark.parametrize("method", [m for m in CARD_ORDER if "seed" in get(m).options()])
def test_negative_seed_is_a_user_error(shapes, method):
    with pytest.raises(ov.OptionError, match="seed"):
        ov.explain(shapes, np.zeros((64, 64, 3), np.uint8), method=method, seed=-1)


def test_seeded_methods_exist():
    seeded = {m for m in CARD_ORDER if "seed" in get(m).options()}
    assert {"lime", "rise", "smoothgrad"} <= seeded


@pytest.mark.parametrize("fn", ["visualize_filters", "deep_dream"])
def test_inside_functions_refuse_negative_seeds(shapes, fn):
    layer = shapes.layers()[0].name
    with pytest.raises(ov.OptionError, match="seed"):
        if fn == "visualize_filters":
            ov.visualize_filters(shapes, layer, [0], steps=1, seed=-3)
        else:
            ov.deep_dream(shapes, np.zeros((64, 64, 3), np.uint8), layer, steps=1, seed=-3)


def test_one_image_in_one_explanation_out_a_list_in_a_list_out(shapes):
    img = np.full((64, 64, 3), 90, np.uint8)
    one = ov.explain(shapes, img, method="gradcam", target=0)
    many = ov.explain(shapes, [img, img], method="gradcam", target=0)
    assert isinstance(one, ov.Explanation)
    assert isinstance(many, list) and len(many) == 2
    np.testing.assert_array_equal(one.heatmap, many[1].heatmap)
