"""The library's boundaries with wrong types and hostile values: only OnnxvizError comes out,
options are checked against their declared ranges before any work, memory follows the budget."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onnxviz as ov
from onnxviz import limits
from onnxviz.explainers import registry
from onnxviz.explainers.ranges import RANGES

from . import crafted

@pytest.fixture(scope="module")
def cnn():
    from onnxviz.data import bundled_model

    return ov.load(bundled_model("shapes_cnn"))


@pytest.fixture(scope="module")
def tiny():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ov.load(crafted.tiny().SerializeToString(), preprocess="unit")


ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-2**80, 2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=5), st.just(np.array(3)), st.just(object()),
    st.just(np.float32("nan")), st.just([1.5, 2.5]))

OPTIONS = sorted({(m, o) for m in registry.methods() for o in registry.get(m).options()
                  if o != "progress"})


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(OPTIONS), ANY)
def test_any_option_value_is_accepted_or_refused_by_name(cnn, case, value):
    """Building an explainer never raises anything but OptionError (or LayerError for a layer
    name), and an accepted number lies in its declared range."""
    method, opt = case
    try:
        registry.get(method)(cnn, **{opt: value})
    except (ov.OptionError, ov.LayerError):
        return
    except ov.OnnxvizError:
        return
    spec = RANGES.get(opt)
    if spec is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        assert spec.low <= value <= spec.high and math.isfinite(value)


@pytest.mark.parametrize("call", [
    lambda m, img: ov.explain(m, img, None),
    lambda m, img: ov.explain(None, img, "saliency"),
    lambda m, img: ov.explain(m, img, "gradcam", layer=5),
    lambda m, img: ov.explain(m, img, "lime", seed=2**70),
    lambda m, img: ov.explain(m, img, "saliency", target="²"),
    lambda m, img: ov.explain(m, img, "saliency", target=10**30),
    lambda m, img: ov.explain(m, [], "saliency"),
    lambda m, img: ov.explain(m, object(), "saliency"),
    lambda m, img: ov.deep_dream(m, img, "features.relu0", channels=[]),
    lambda m, img: ov.deep_dream(m, img, "features.relu0", steps=10**20),
    lambda m, img: ov.visualize_filters(m, "features.relu0", channels=["a"]),
    lambda m, img: ov.activations(m, img, layers=[3.5]),
    lambda m, img: ov.read_image(5),
    lambda m, img: ov.read_image(np.zeros((0, 0, 3), np.uint8)),
    lambda m, img: m.predict(None),
    lambda m, img: m.forward(np.zeros((2, 5)), batch_size=0),
    lambda m, img: m.layer(5),
    lambda m, img: ov.load(b"\0" * 10),
    lambda m, img: ov.load(12),
    lambda m, img: ov.load("x" * 5000),
    lambda m, img: ov.load(m.source, threads=10**6),
], ids=lambda f: f.__code__.co_firstlineno)
def test_wrong_types_raise_onnxviz_errors(cnn, call):
    img = ov.read_image("skimage:chelsea")
    with pytest.raises(ov.OnnxvizError):
        call(cnn, img)


def test_zero_d_target_array(cnn):
    img = ov.read_image("skimage:chelsea")
    assert ov.explain(cnn, img, "saliency", target=np.array(1)).target == 1


def test_numba_cache_is_outside_the_package():
    import os

    cache = os.environ["NUMBA_CACHE_DIR"]
    assert not os.path.abspath(cache).startswith(os.path.dirname(os.path.abspath(ov.__file__)))


def test_nonfinite_results_are_flagged(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ov.load(crafted.nan_out().SerializeToString(), preprocess="unit")
    img = np.full((16, 16, 3), 100, np.uint8)
    for method in ("saliency", "occlusion"):
        with pytest.warns(ov.errors.NonFiniteWarning):
            e = ov.explain(m, img, method, **({"patch": 8} if method == "occlusion" else {}))
        assert "NaN" in e.extras["nonfinite"] or "nan" in e.extras["nonfinite"]
    with pytest.warns(ov.errors.NonFiniteWarning):
        m.predict(img)


def test_batch_mixing_model_is_detected_at_load():
    with pytest.warns(UserWarning, match="one row per image"):
        m = ov.load(crafted.batch_mixer().SerializeToString(), preprocess="unit")
    assert m.fixed_batch
    imgs = [np.full((16, 16, 3), v, np.uint8) for v in (0, 100, 200)]
    rows = m.predict(imgs)
    singles = [m.predict(i) for i in imgs]
    assert rows == singles


def test_probe_time_limit(monkeypatch):
    monkeypatch.setattr(limits, "PROBE_SECONDS", 1.0)
    with pytest.raises(ov.errors.ExecutionError, match="took more than 1 s"):
        ov.load(crafted.slow_loop().SerializeToString(), preprocess="unit")


def test_model_input_larger_than_the_budget_is_refused_before_allocating():
    with pytest.raises(ov.errors.ResourceError, match="memory budget"):
        ov.load(crafted.big_input(100000).SerializeToString())


def test_image_header_is_checked_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(crafted.png_header_only(30000, 30000))
    with pytest.raises(ov.errors.ResourceError, match="pixels"):
        ov.read_image(p)
    with pytest.raises(ov.errors.ResourceError, match="pixels"):
        from onnxviz.imageio import decode_image

        decode_image(p.read_bytes())


def test_batches_follow_the_memory_budget_and_results_do_not_change(cnn):
    """A budget that holds two images per run gives the same maps as the default batch."""
    img = ov.read_image("skimage:chelsea")
    want = ov.explain(cnn, img, "occlusion", patch=16, stride=16)
    per = cnn.sample_bytes()
    old = limits.set_memory_budget(int(2.5 * per))
    try:
        assert cnn.fit_batch(32) == 2
        got = ov.explain(cnn, img, "occlusion", patch=16, stride=16)
        np.testing.assert_array_equal(got.heatmap, want.heatmap)
        limits.set_memory_budget(int(0.5 * per))
        with pytest.raises(ov.errors.ResourceError, match="memory budget"):
            ov.explain(cnn, img, "occlusion", patch=16, stride=16)
    finally:
        limits.set_memory_budget(old)


def test_budget_setting_parses_sizes():
    assert limits.parse_bytes("512M") == 512 << 20
    assert limits.parse_bytes("2G") == 2 << 30
    assert 0 < limits.parse_bytes("10%") < limits.available_memory()
    for bad in ("", "abc", "0", "-1G", "200%", "1K"):
        with pytest.raises(ov.OptionError):
            limits.parse_bytes(bad)
