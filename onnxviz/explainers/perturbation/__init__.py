"""Perturbation explainers: occlusion, LIME and RISE, fed by :mod:`onnxviz.perturb`."""

from .lime import Lime, LimeExplanation
from .occlusion import Occlusion
from .rise import Rise

__all__ = ["Lime", "LimeExplanation", "Occlusion", "Rise"]
