"""Inside the network: activations, filter visualization and deep dream.

``activations`` reads any layers from one run with those tensors exposed. ``visualize_filters`` and
``deep_dream`` are gradient ascent on the input image (in pixel space, 0-255) that maximises the mean
activation of chosen channels of a layer, through a gradient graph cut at that layer.
"""

from __future__ import annotations

import numpy as np

from .errors import OptionError, guard
from .explainers._gradient import chunks
from .model.layouts import from_nchw, layer_layout, to_nchw
from .model.tokens import resolve_layer


@guard("activations")
def activations(model, image, layers=None, batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Activations of layers for an image, channel-first whatever the model's layout.

    Args:
        model: an :class:`onnxviz.Model`.
        image: one image (HxWx3 uint8 array or path), a list of them or an (N, H, W, 3) array.
        layers: a layer name or a list of names; ``None`` for every 4-D layer.
        batch_size: images per run.

    Returns:
        ``{layer name: array}``: (C, h, w) per layer for one image, (N, C, h, w) for a list.
        All layers come from one run of the model with their tensors exposed.
    """
    single = not isinstance(image, (list, tuple)) and not (
        isinstance(image, np.ndarray) and image.ndim == 4)
    if layers is None:
        chosen = [ly for ly in model.layers() if ly.is_4d]
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        chosen = [resolve_layer(model, n) for n in names]
    if not chosen:
        raise OptionError("the model has no 4-D layers")
    x = model.preprocess(image)
    values = model.run(x, [ly.tensor for ly in chosen], batch_size=batch_size)
    out = {}
    for ly in chosen:
        a = to_nchw(values[ly.tensor], layer_layout(model, ly))
        out[ly.name] = a[0] if single else a
    return out


class _Ascent:
    """Gradient of the mean activation of chosen channels of a layer w.r.t. the input pixels."""

    def __init__(self, model, layer):
        import onnx.utils

        from . import runtime
        from .autodiff import gradient_model

        self.model = model
        self.layer = resolve_layer(model, layer)
        self.layout = layer_layout(model, self.layer)
        inp = model.input.name
        cut = onnx.utils.Extractor(model.proto).extract_model([inp], [self.layer.tensor])
        cut.ir_version = model.proto.ir_version
        g = gradient_model(cut, of=self.layer.tensor, wrt=[inp])
        self.seed, self.grad_out = g.seed, g.grads[inp]
        self.sess = runtime.session(g.model, providers=model.providers, threads=model.threads)
        self.A, self.b = _pixel_affine(model)
        grey = model.normalize(np.full((1, *model.input.size, 3), 128, np.float32))
        act = model.run(grey, [self.layer.tensor])[self.layer.tensor]
        self.shape = to_nchw(act, self.layout).shape[1:]  # (C, h, w)

    def __call__(self, pixels: np.ndarray, channels: list) -> tuple[np.ndarray, np.ndarray]:
        """(d objective / d pixels (N, H, W, 3), objective (N,)) for float pixels (N, H, W, 3).

        The objective of row ``n`` is the mean over positions and over ``channels[n]`` (a list of
        channel indices) of the layer's activation.
        """
        m = self.model
        x = m.normalize(pixels)
        feeds = {m.input.name: x}
        c, h, w = self.shape
        seed = np.zeros((len(x), c, h, w), np.float32)
        for n, chans in enumerate(channels):
            seed[n, chans] = 1.0 / (len(chans) * h * w)
        feeds[self.seed] = from_nchw(seed, self.layout)
        gx, act = self.sess.run([self.grad_out, self.layer.tensor], feeds)
        act = to_nchw(act, self.layout)
        objective = np.array([act[n, ch].mean() for n, ch in enumerate(channels)])
        gx = gx.transpose(0, 2, 3, 1) if m.input.layout == "NCHW" else gx
        # x = A p + b per pixel (A: C x 3), so dL/dp = dL/dx @ A (a grey model has C = 1)
        return gx @ self.A, objective



def _pixel_affine(model) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``x[..., c] = sum_j A[c, j] pixels[..., j] + b[c]`` (channels-last).

    Found by probing ``model.normalize`` with black and single-channel images, so it holds for
    any per-channel affine preprocessing, channel reordering or grey conversion.
    """
    h, w = model.input.size
    probes = np.zeros((4, h, w, 3), np.float32)
    for j in range(3):
        probes[j + 1, ..., j] = 1.0
    x = model.normalize(probes)
    x = x.transpose(0, 2, 3, 1) if model.input.layout == "NCHW" else x
    px = x[:, h // 2, w // 2, :].astype(np.float64)  # (4, C)
    b = px[0]
    return (px[1:] - b).T, b  # (C, 3), (C,)


def _check_common(**options) -> None:
    from .explainers.ranges import INSIDE

    for name, value in options.items():
        INSIDE[name].check(name, value)


def _channels(channels, n_ch: int, layer: str, default) -> list[int]:
    """Channel indices in range, at least one."""
    if channels is None:
        return default
    values = np.atleast_1d(np.asarray(channels, dtype=object)).tolist()
    if not values:
        raise OptionError("channels must name at least one channel")
    out = []
    for ch in values:
        if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)) or not 0 <= ch < n_ch:
            raise OptionError(f"channel {ch!r} out of range: layer {layer!r} has channels "
                              f"0..{n_ch - 1}")
        out.append(int(ch))
    return out


def _step(ascent, p, channels, *, lr, jitter, blur, tv, rng, k, blur_every=4):
    """One regularised ascent step on float pixels ``p`` (N, H, W, 3), in place; the objective."""
    import cv2

    dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
    shifted = np.roll(p, (dy, dx), axis=(1, 2))
    g, obj = ascent(shifted, channels)
    g = np.roll(g, (-dy, -dx), axis=(1, 2))
    rms = np.sqrt((g**2).mean(axis=(1, 2, 3), keepdims=True)) + 1e-8
    p += lr * g / rms
    if tv:  # a diffusion step: gradient descent on the squared-difference total variation
        lap = (np.roll(p, 1, 1) + np.roll(p, -1, 1) + np.roll(p, 1, 2) + np.roll(p, -1, 2) - 4 * p)
        p += min(tv, 0.12) * lap
    if blur and (k + 1) % blur_every == 0:
        for n in range(len(p)):
            p[n] = cv2.GaussianBlur(p[n], (0, 0), blur)
    np.clip(p, 0, 255, out=p)
    return obj


@guard("filter visualization")
def visualize_filters(model, layer: str, channels=None, *, steps: int = 30, lr: float = 8.0,
                      jitter: int = 2, blur: float = 0.5, tv: float = 0.0, contrast: bool = True,
                      seed: int = 0, batch_size: int = 16, history: bool = False):
    """What maximally excites channels of a layer: gradient ascent from noise.

    The method of Chollet's *Deep Learning with Python* (ch. 9; Erhan et al. 2009): start from grey
    noise, repeat ``pixels += lr * g / rms(g)`` with ``g`` the gradient of the channel's mean
    activation, regularised by random jitter (Mordvintsev et al. 2015), a Gaussian blur every 4
    steps and/or a total-variation diffusion step. Channels run together as one batch.

    Args:
        model: an :class:`onnxviz.Model`.
        layer: a layer name (see ``model.layers()``).
        channels: a channel index or a list of them; ``None`` for the first 8.
        steps: ascent steps.
        lr: step size, in pixel levels (0-255) per step at unit RMS gradient.
        jitter: maximum random shift in pixels before each step (0 = off).
        blur: sigma in pixels of the periodic Gaussian blur (0 = off).
        tv: weight of the total-variation diffusion step (0 = off; at most 0.12 is used).
        contrast: stretch each image for display (mean 128, 0.15 of the range per standard
            deviation, as Chollet's ``deprocess_image``); ``False`` returns the optimised pixels.
        seed: seed of the starting noise and of the jitter.
        batch_size: channels per run.
        history: also return the objective per channel and step.

    Returns:
        A list of (H, W, 3) uint8 images, one per channel; with ``history``, also an array
        (steps + 1, len(channels)) of objectives: the mean activation before each step and at
        the end.
    """
    _check_common(steps=steps, lr=lr, jitter=jitter, blur=blur, tv=tv, seed=seed,
                  batch_size=batch_size)
    ascent = _Ascent(model, layer)
    n_ch = ascent.shape[0]
    chans = _channels(channels, n_ch, ascent.layer.name, list(range(min(8, n_ch))))
    h, w = model.input.size
    bs = 1 if model.fixed_batch else batch_size
    images, objectives = [], []
    for part in chunks(len(chans), bs):
        sel = [[int(ch)] for ch in chans[part]]
        rng = np.random.default_rng(seed)
        p = rng.uniform(102, 153, size=(1, h, w, 3)).astype(np.float32).repeat(len(sel), axis=0)
        objs = [_step(ascent, p, sel, lr=lr, jitter=jitter, blur=blur, tv=tv, rng=rng, k=k)
                for k in range(steps)]
        if history:
            objs.append(ascent(p, sel)[1])
        objectives.append(np.stack(objs))
        images.extend(_to_uint8(q, contrast) for q in p)
    return (images, np.concatenate(objectives, axis=1)) if history else images


def _to_uint8(p: np.ndarray, contrast: bool) -> np.ndarray:
    if contrast:
        p = (p - p.mean()) / (p.std() + 1e-5) * (0.15 * 255) + 128
    return np.clip(np.rint(p), 0, 255).astype(np.uint8)


@guard("deep dream")
def deep_dream(model, image, layer: str, channels=None, *, octaves: int = 3,
               octave_scale: float = 1.4, steps: int = 10, lr: float = 3.0, jitter: int = 8,
               blur: float = 0.0, tv: float = 0.0, seed: int = 0, history: bool = False):
    """Deep dream: amplify what a layer sees in a real image, coarse scales first.

    The multi-scale ascent of Mordvintsev et al. (2015) and MATLAB's ``deepDreamImage``
    (``PyramidLevels``/``PyramidScale``): at each octave, from the smallest, the image is ascended
    at that resolution (resized to the model's input size for each run, its gradient resized back),
    then enlarged to the next octave with the detail lost by shrinking added back.

    Args:
        model: an :class:`onnxviz.Model`.
        image: one image (HxWx3 uint8 array or path).
        layer: a layer name.
        channels: channel indices whose mean activation is maximised; ``None`` for all.
        octaves: pyramid levels.
        octave_scale: size ratio between levels.
        steps: ascent steps per octave.
        lr, jitter, blur, tv: as in :func:`visualize_filters`.
        seed: seed of the jitter.
        history: also return the objective at each step.

    Returns:
        (H, W, 3) uint8 at the model's input size (and the objectives with ``history``).
    """
    import cv2

    _check_common(steps=steps, lr=lr, jitter=jitter, blur=blur, tv=tv, seed=seed,
                  octaves=octaves, octave_scale=octave_scale)
    ascent = _Ascent(model, layer)
    n_ch = ascent.shape[0]
    chans = _channels(channels, n_ch, ascent.layer.name, list(range(n_ch)))
    h, w = model.input.size
    original = model.to_pixels(image)[0].astype(np.float32)
    shapes = [(max(8, round(h / octave_scale**i)), max(8, round(w / octave_scale**i)))
              for i in reversed(range(octaves))]

    def resize(a, hw):
        return cv2.resize(a, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)

    def full_size_objective(small, sel):
        g, obj = ascent(resize(small[0], (h, w))[None], sel)
        return cv2.resize(g[0], (small.shape[2], small.shape[1]), interpolation=cv2.INTER_AREA)[None], obj

    rng = np.random.default_rng(seed)
    shrunk = resize(original, shapes[0])
    img = shrunk.copy()
    objectives = []
    for shape in shapes:
        img = resize(img, shape)
        p = img[None]
        for k in range(steps):
            objectives.append(_step(full_size_objective, p, [chans], lr=lr, jitter=jitter, blur=blur,
                                    tv=tv, rng=rng, k=k)[0])
        img = p[0] + resize(original, shape) - resize(shrunk, shape)
        np.clip(img, 0, 255, out=img)
        shrunk = resize(original, shape)
    out = _to_uint8(resize(img, (h, w)), contrast=False)
    return (out, np.asarray(objectives)) if history else out
