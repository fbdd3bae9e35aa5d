"""Exact incremental occlusion: re-run only what a patch can change (Krypton, SIGMOD 2019).

:mod:`.rules` and :mod:`.plan` are pure geometry: where each tensor can change for each patch
position, where the graph is cut, and what the cost model expects. :mod:`.graphs`, :mod:`.kernels`
and :mod:`.run` execute a plan: crop graphs on ONNX Runtime, Numba gathers and pastes into the
cached original activations, and the rest of the graph on whole tensors.
"""

from .plan import Plan, make_plan, propagate
from .run import AUTO_SPEEDUP, Runner, plan_for

__all__ = ["AUTO_SPEEDUP", "Plan", "Runner", "make_plan", "plan_for", "propagate"]
