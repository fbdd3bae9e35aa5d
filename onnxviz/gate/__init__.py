"""An explanation-regression gate for deployment pipelines.

``snapshot`` records what a model does and where it looks on a set of images (maps, targets,
scores, top-1 predictions, deletion AUC, attribution outside a region of interest); ``check``
recomputes them with a new version of the model (retrained, quantized, re-exported) and holds the
new maps to rules (:mod:`onnxviz.gate.rules`, thresholds in ``gate.toml``):

* ``prediction``: the top-1 class is unchanged;
* ``rank_correlation``: Spearman's rank correlation with the baseline map is at least a minimum;
* ``top_overlap``: the top-k % pixels of both maps overlap (IoU) at least a minimum;
* ``roi``: at most a share of the positive attribution lies outside the region of interest;
* ``deletion``: the deletion AUC is not worse than the baseline's by more than a margin.

The CLI is ``onnxviz snapshot`` and ``onnxviz check`` (exit 1 when a rule fails).
"""

from __future__ import annotations

from .baseline import observe, read, write
from .check import Case, Result, check
from .config import defaults, load
from .rules import RULES, Verdict

__all__ = ["Case", "RULES", "Result", "Verdict", "check", "defaults", "load", "observe", "read",
           "write"]
