"""Explain datasets past one machine, on a Ray cluster.

    >>> from onnxviz.distributed import explain_dataset, read_results
    >>> summary = explain_dataset("model.onnx", "images/", methods=["gradcam", "occlusion"],
    ...                           out="run1/")
    >>> table = read_results("run1/")           # one row per image x method
    >>> maps = table["heatmap"].combine_chunks().to_numpy_ndarray()   # (rows, H, W) float32

Ray Data reads the image files, an actor pool holds one ONNX Runtime session per actor and each
actor explains batches of images, writing Parquet part files (and PNGs) under ``out``. A rerun
skips the rows already written; images that cannot be decoded or explained become rows of the
errors table. Results are the single-process :func:`onnxviz.explain` results, bit for bit.

Ray is an optional dependency (``pip install 'onnxviz[ray]'``); importing this package does not
import it. The output layout is described in :mod:`onnxviz.distributed.store`.
"""

from __future__ import annotations

import importlib

from ..errors import OnnxvizError

#: What to install when Ray is missing (the ``ray`` extra of onnxviz).
INSTALL_HINT = "pip install 'onnxviz[ray]'  (or: pip install 'ray[data]>=2.9' pyarrow)"


class DistributedError(OnnxvizError):
    """Ray missing, a cluster that cannot be reached, or an output folder of another run."""


def require_ray():
    """Import and return ``ray`` (with Ray Data and pyarrow), or say how to install them."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data
    except ImportError:
        raise DistributedError(f"the Ray engine needs Ray Data and pyarrow: {INSTALL_HINT}") \
            from None
    return ray


_LAZY = {
    "explain_dataset": ".job",
    "RunSummary": ".job",
    "Render": "..results",
    "read_results": ".store",
    "read_errors": ".store",
}

__all__ = [
    "INSTALL_HINT",
    "DistributedError",
    "Render",
    "RunSummary",
    "explain_dataset",
    "read_errors",
    "read_results",
    "require_ray",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
