"""Inside the network: activations (channel-first), filter visualization, deep dream."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

import onnxviz as ov


@pytest.fixture(scope="module")
def effnet(effnet_path):
    return ov.load(effnet_path)


def test_activations_are_channel_first_nchw(effnet):
    from skimage.data import chelsea

    acts = ov.activations(effnet, chelsea(), ["_conv_stem", "_swish_1"])
    assert acts["_conv_stem"].shape == (32, 112, 112)
    assert acts["_swish_1"].shape == (1280, 7, 7)
    raw = effnet.run(effnet.preprocess(chelsea()), ["/_swish_1/Clip_output_0"])
    np.testing.assert_array_equal(acts["_swish_1"], raw["/_swish_1/Clip_output_0"][0])
    both = ov.activations(effnet, [chelsea(), chelsea()], "_swish_1")
    assert both["_swish_1"].shape == (2, 1280, 7, 7)


def test_activations_all_layers_by_default(effnet):
    acts = ov.activations(effnet, np.zeros((224, 224, 3), np.uint8))
    assert list(acts) == [ly.name for ly in effnet.layers() if len(ly.shape) == 4]


def test_activations_of_keras_model_are_channel_first(shapes_keras_path):
    """Each conv's activations have as many leading entries as the conv has filters (from its
    weight initializer), whatever the layout of the tensor inside the graph."""
    m = ov.load(shapes_keras_path)
    assert m.input.layout == "NHWC"
    init = {t.name: numpy_helper.to_array(t) for t in m.proto.graph.initializer}
    convs = {n.output[0]: init[n.input[1]].shape[0] for n in m.proto.graph.node
             if n.op_type == "Conv" and n.input[1] in init}
    layers = [ly for ly in m.layers() if ly.tensor in convs]
    assert layers
    img = np.full((64, 64, 3), 200, np.uint8)
    acts = ov.activations(m, img, [ly.name for ly in layers])
    for ly in layers:
        a = acts[ly.name]
        assert a.shape[0] == convs[ly.tensor] and a.shape[1] == a.shape[2], (ly.name, a.shape)


@pytest.mark.parametrize("layer", ["_blocks.2._project_conv", "_blocks.15._project_conv"])
def test_filter_visualization_excites_the_channel(effnet, layer):
    """Early and late layer, the first two channels: the channel's mean activation on the returned
    image is at least 10x (in magnitude) its value on the starting noise, measured independently
    with ``ov.activations``. (Measured on the first 8 channels after 10 steps: 1.5x-49x early,
    2x-42x late; channels that already respond strongly to grey noise need more steps.)"""
    channels = [0, 1]
    imgs, hist = ov.visualize_filters(effnet, layer, channels, steps=10, lr=16.0, blur=0, jitter=1,
                                      contrast=False, seed=1, history=True)
    assert len(imgs) == 2 and imgs[0].shape == (224, 224, 3) and imgs[0].dtype == np.uint8
    after = ov.activations(effnet, imgs, layer)[layer]
    for k, ch in enumerate(channels):
        start = hist[0, k]
        final = after[k, ch].mean()
        assert final >= 10 * abs(start), (layer, ch, start, final)
        assert abs(final - hist[-1, k]) <= 0.05 * abs(final)  # rounding to uint8 keeps the gain


def test_filter_visualization_batch_invariance(effnet):
    together = ov.visualize_filters(effnet, "_blocks.1._project_conv", [3, 4], steps=3, seed=2)
    alone = ov.visualize_filters(effnet, "_blocks.1._project_conv", 4, steps=3, seed=2,
                                 batch_size=1)
    assert np.abs(together[1].astype(int) - alone[0].astype(int)).max() <= 1


def test_deep_dream_amplifies_the_layer(effnet):
    from skimage.data import chelsea

    out, hist = ov.deep_dream(effnet, chelsea(), "_blocks.5._project_conv", octaves=2, steps=4,
                              history=True)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    base = ov.activations(effnet, chelsea(), "_blocks.5._project_conv")["_blocks.5._project_conv"]
    after = ov.activations(effnet, out, "_blocks.5._project_conv")["_blocks.5._project_conv"]
    assert after.mean() > base.mean() + 0.5 * abs(base.mean())
    assert hist[-1] > hist[0]


def test_bad_options(effnet):
    with pytest.raises(ov.OptionError):
        ov.visualize_filters(effnet, "_conv_stem", [99])
    with pytest.raises(ov.LayerError):
        ov.visualize_filters(effnet, "_conv_stm", [0])
    with pytest.raises(ov.OptionError):
        ov.deep_dream(effnet, np.zeros((8, 8, 3), np.uint8), "_conv_stem", octave_scale=1.0)
