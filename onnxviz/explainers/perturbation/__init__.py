"""Perturbation explainers: occlusion, LIME, RISE and KernelSHAP, fed by :mod:`onnxviz.perturb`."""

# isort: off  (import order is registration order: ov.METHODS lists occlusion, lime, rise, kernelshap)
from .occlusion import Occlusion
from .lime import Lime, LimeExplanation
from .rise import Rise
from .kernelshap import KernelShap
from .drise import DRise

# isort: on

__all__ = ["DRise", "KernelShap", "Lime", "LimeExplanation", "Occlusion", "Rise"]
