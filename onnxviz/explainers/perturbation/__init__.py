"""Perturbation explainers: occlusion, LIME and RISE, fed by :mod:`onnxviz.perturb`."""

# isort: off  (import order is registration order: ov.METHODS lists occlusion, lime, rise)
from .occlusion import Occlusion
from .lime import Lime, LimeExplanation
from .rise import Rise

# isort: on

__all__ = ["Lime", "LimeExplanation", "Occlusion", "Rise"]
