"""Sparseness: the Gini index of the map's absolute values (Chalasani et al., "Concise
Explanations of Neural Networks using Adversarial Training", ICML 2020, sec. 5.1,
https://arxiv.org/abs/1810.06583; the index as in Hurley & Rickard 2009, eq. (G)).

With the n values sorted ascending, ``G = sum_i (2 i - n - 1) a_(i) / (n sum_i a_(i))``: 0 for a
flat map, ``1 - 1/n`` when a single pixel holds all the mass.
"""

from __future__ import annotations

import numpy as np

from ._common import heat_of
from .registry import Score, metric


def gini(values) -> float:
    """Gini index of ``|values|`` (NaN when they are all zero)."""
    a = np.sort(np.abs(np.asarray(values, np.float64)).ravel())
    n, total = a.size, a.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * a).sum() / (n * total))


@metric("sparseness", "Gini index of the map's absolute values (1 = all mass on one pixel)",
        higher_is_better=True, paper="Chalasani et al. 2020, https://arxiv.org/abs/1810.06583")
def sparseness(model, explanation, mask=None) -> Score:
    """Sparseness of one explanation.

    Args:
        model: unused.
        explanation: an :class:`onnxviz.Explanation`.
        mask: unused.

    Returns:
        :class:`Score` with the Gini index in [0, 1).
    """
    return Score("sparseness", gini(heat_of(explanation)))
