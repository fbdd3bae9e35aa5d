"""How good is an explanation? Faithfulness, localisation, sparseness and sanity metrics.

    >>> import onnxviz as ov
    >>> from onnxviz import metrics
    >>> m = ov.load(ov.bundled_model("shapes_cnn"))
    >>> e = ov.explain(m, "skimage:astronaut", method="gradcam")
    >>> metrics.get("deletion")(m, e).value  # doctest: +SKIP
    0.41

Every metric is registered once (:mod:`onnxviz.metrics.registry`) and reached by name:
``deletion``, ``insertion``, ``road_morf``, ``road_lerf``, ``pointing_game``,
``energy_pointing_game``, ``sparseness``, ``randomisation``. :func:`evaluate` scores many
explanations; :func:`summarize` gives the method x metric means with 95 % intervals.
"""

from __future__ import annotations

from .evaluate import evaluate, interval, summarize
from .registry import Metric, Score, get, names, parse

__all__ = ["Metric", "Score", "evaluate", "get", "interval", "names", "parse", "summarize"]
