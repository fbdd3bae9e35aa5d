"""An Explanation shows itself: Jupyter's PNG and HTML forms, show() and save()."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

import onnxviz as ov
from onnxviz.explainers.base import Explanation
from onnxviz.viz import notebook


def _explanation(size=28, image=True, label="tabby <cat>"):
    yy, xx = np.mgrid[:size, :size]
    heat = np.exp(-((yy - size / 4) ** 2 + (xx - size / 4) ** 2) / size).astype(np.float32)
    img = np.full((size, size, 3), 128, np.uint8) if image else None
    return Explanation(heatmap=heat, raw=None, target=281, label=label, score=0.8125,
                       method="gradcam", image=img)


def _decode(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def test_png_is_the_overlay_scaled_up_under_a_caption():
    e = _explanation(size=28)
    pic = _decode(e._repr_png_())
    assert pic.shape[1] == 28 * 8  # nearest-neighbour x8: at least 224 px wide
    top = pic.shape[0] - 224  # the caption band: white with dark text, whole (two lines here)
    assert top in (20, 40, 60)
    band = pic[:top]
    assert (band == 255).mean() > 0.5 and band.min() < 100
    body = pic[top:]
    assert body.shape[:2] == (224, 224)
    np.testing.assert_array_equal(body[::8, ::8], notebook.picture(e)[::8, ::8])
    assert (body[:8, :8] == body[0, 0]).all()  # one model pixel is an 8x8 block
    hot = np.unravel_index(np.argmax(body[..., 0].astype(int) - body[..., 2]), body.shape[:2])
    assert hot[0] < 112 and hot[1] < 112  # the hot spot stays top-left


def test_a_large_input_is_not_resized():
    pic = notebook.picture(_explanation(size=240))
    assert pic.shape == (240, 240, 3)


def test_html_holds_the_picture_and_an_escaped_caption():
    page = _explanation()._repr_html_()
    assert page.count("data:image/png;base64,") == 1
    assert "gradcam: class 281 tabby &lt;cat&gt;, logit 0.8125" in page
    assert "<cat>" not in page


def test_without_an_image_the_heatmap_alone_is_shown(tmp_path):
    e = _explanation(image=False)
    out = e.save(tmp_path / "e.png")
    pic = cv2.imread(str(out))[..., ::-1]
    # the whole caption, over two lines at 224 px (it was cut with "~" into one)
    assert pic.shape == (2 * 20 + 224, 224, 3)


def test_save_writes_the_captioned_png(tmp_path):
    e = _explanation(size=64)
    out = e.save(tmp_path / "gradcam.png", cmap="viridis")
    assert out == tmp_path / "gradcam.png"
    np.testing.assert_array_equal(cv2.imread(str(out))[..., ::-1],
                                  notebook.captioned(e, cmap="viridis"))


def test_show_uses_matplotlib_or_does_nothing(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf().axes[0].get_title()))
    e = _explanation()
    assert e.show() is None
    assert shown == [notebook.caption_text(e)] and not plt.get_fignums()

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # not installed
    assert e.show() is None and len(shown) == 1


def test_a_real_explanation_displays(shapes_path):
    m = ov.load(shapes_path)
    img = np.zeros((64, 64, 3), np.uint8)
    img[10:30, 20:40] = 255
    e = ov.explain(m, img, method="gradcam")
    pic = _decode(e._repr_png_())
    assert pic.shape[1] == 256  # 64 px x4
    assert f"gradcam: class {e.target} {e.label}" in e._repr_html_()


@pytest.mark.parametrize("score,text", [(0.5, "logit 0.5"), (12.3456789, "logit 12.35")])
def test_caption_text(score, text):
    e = _explanation()
    e.score = score
    assert notebook.caption_text(e).endswith(text)


def test_caption_names_the_probability_of_perturbation_methods():
    e = _explanation()
    e.params = {"score": "probability"}
    assert notebook.caption_text(e).endswith("probability 0.8125")
