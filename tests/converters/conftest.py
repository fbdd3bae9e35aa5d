"""Make the repository's top-level ``models`` folder (build and training scripts) importable.

It is not part of the installed ``onnxviz`` package. pytest puts ``tests/`` on ``sys.path``, where
a folder of the same name would shadow it as a namespace package, so the repository root goes
first.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))
module = sys.modules.get("models")
if module is not None and getattr(module, "__file__", None) is None:
    del sys.modules["models"]  # a namespace package picked up from tests/
