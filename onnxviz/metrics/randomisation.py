"""Model-parameter randomisation, the sanity check of Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018, sec. 3.1 (https://arxiv.org/abs/1810.03292), done on the ONNX file itself.

The weights of the model's layers are re-initialised in cascade from the top (the classifier)
down: stage k has the k top layers random and the rest as trained. At each stage the same method
explains the same image and target again, and the Spearman rank correlation with the original map
is recorded. A method whose map depends on what the model learned loses the correlation fast; one
that stays correlated with random weights shows the image, not the model (an edge detector).

Layers are the nodes with learnable weights (:data:`WEIGHTED_OPS`), in graph order; a float
initializer that adds a bias to a weighted node's output belongs to that layer. BatchNormalization
keeps its running statistics (they are not learned by gradient) and randomises scale and bias.
A re-initialised tensor is drawn from ``N(0, rms(w)^2)``, keeping each tensor's scale. Files whose
weights are int8 (the float weights are not initializers) have no layer to randomise.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import OptionError
from ._common import heat_of, pixels_of, spearman
from .registry import Score, metric

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization",
                          "LayerNormalization", "InstanceNormalization", "GroupNormalization"})
#: Inputs of a weighted op that are not learned weights.
_NOT_LEARNED = {"BatchNormalization": (3, 4)}


def layers(proto: onnx.ModelProto) -> list[tuple[str, list[str]]]:
    """The layers with float weights, bottom to top: ``[(node name, [initializer names])]``."""
    floats = {t.name for t in proto.graph.initializer
              if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                 onnx.TensorProto.FLOAT16) and np.prod(t.dims) > 1}
    producer = {o: n for n in proto.graph.node for o in n.output}
    out: list[tuple[str, list[str]]] = []
    index: dict[str, int] = {}
    seen: set[str] = set()
    for k, node in enumerate(proto.graph.node):
        skip = _NOT_LEARNED.get(node.op_type, ())
        own = [i for j, i in enumerate(node.input) if i in floats and i not in seen
               and j not in skip]
        if node.op_type in WEIGHTED_OPS and own:
            index[node.output[0]] = len(out)
            out.append((node.name or f"{node.op_type}_{k}", own))
            seen.update(own)
        elif node.op_type == "Add" and own:
            src = [i for i in node.input if i in index and producer.get(i) is not None]
            if src:  # a bias after MatMul/Conv
                out[index[src[0]]][1].extend(own)
                seen.update(own)
                index[node.output[0]] = index[src[0]]
    return out


def cascade(proto: onnx.ModelProto, stages: int, seed: int):
    """Yield ``(layers randomised, deepest layer's name, proto)`` for each cascading stage.

    The layers are re-initialised top-down; with more layers than ``stages``, the stages are
    checkpoints of the same cascade (evenly spaced, the first after the top layer alone and the
    last with every layer random). A tensor gets the same random values at every stage.
    """
    found = layers(proto)[::-1]
    if not found:
        raise OptionError("the model has no float weights to randomise (an int8 file keeps its "
                          "weights quantized; randomise the float model instead)")
    cuts = np.unique(np.round(np.linspace(1, len(found), min(stages, len(found)))).astype(int))
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in proto.graph.initializer}
    drawn: dict[str, np.ndarray] = {}
    for _, names in found:
        for n in names:
            w = numpy_helper.to_array(inits[n])
            rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64))))
            drawn[n] = rng.normal(0.0, rms or 1e-2, w.shape).astype(w.dtype)
    for cut in cuts:
        names = {n for _, ns in found[:cut] for n in ns}
        out = onnx.ModelProto()
        out.CopyFrom(proto)
        for t in out.graph.initializer:
            if t.name in names:
                t.CopyFrom(numpy_helper.from_array(drawn[t.name], t.name))
        yield int(cut), found[cut - 1][0], out


_CACHE: list = []  # [(model, stages, seed, [(cut, name, Model)])], the last two runs


def stage_models(model, stages: int, seed: int) -> list:
    """The randomised models of :func:`cascade`, loaded (cached for the last two settings)."""
    for m, s, sd, loaded in _CACHE:
        if m is model and s == stages and sd == seed:
            return loaded
    from ..model import load_like

    loaded = [(cut, name, load_like(model, p)) for cut, name, p in
              cascade(model.proto, stages, seed)]
    _CACHE.append((model, stages, seed, loaded))
    del _CACHE[:-2]
    return loaded


@metric("randomisation", "mean rank correlation of the map with maps of cascade-randomised "
        "models (low = the map depends on the weights)", higher_is_better=False,
        paper="Adebayo et al. 2018, https://arxiv.org/abs/1810.03292")
def randomisation(model, explanation, mask=None, *, stages: int = 6, seed: int = 0) -> Score:
    """Cascading model-parameter randomisation of one explanation.

    Args:
        model: the :class:`onnxviz.Model` that was explained.
        explanation: an :class:`onnxviz.Explanation`; its method runs again with its ``params``
            on the same image and target.
        mask: unused.
        stages: how many points of the cascade to explain at (at most one per layer).
        seed: seed of the random weights.

    Returns:
        :class:`Score`: the mean Spearman correlation over the stages; details ``layers``
        (layers randomised per stage), ``names`` (the deepest one) and ``y`` (correlations).
    """
    from ..explainers.registry import get

    if not isinstance(stages, (int, np.integer)) or stages < 1:
        raise OptionError(f"stages must be a positive integer, got {stages!r}")
    heat = heat_of(explanation)
    pixels = pixels_of(model, explanation)
    cls = get(explanation.method)
    base = getattr(model, "base", model)  # a box's or a region's view: randomise its model
    cuts, names, rhos = [], [], []
    for cut, name, random_model in stage_models(base, int(stages), int(seed)):
        if "detect" in getattr(cls, "tasks", ()):  # D-RISE reads the raw head: the box itself
            (e,) = cls(random_model, **explanation.params).explain_boxes(
                pixels, np.asarray([explanation.extras["input_box"]], np.float32),
                np.asarray(model.classes[:1]), model.labels[:1])
        else:
            seen = model.rebased(random_model) if base is not model else random_model
            (e,) = cls(seen, **explanation.params).explain([pixels],
                                                           target=int(explanation.target))
        cuts.append(cut)
        names.append(name)
        rhos.append(spearman(heat, e.heatmap))
    y = np.asarray(rhos, np.float64)
    value = float(np.nanmean(y)) if np.isfinite(y).any() else float("nan")
    return Score("randomisation", value, {"layers": cuts, "names": names, "y": y})
