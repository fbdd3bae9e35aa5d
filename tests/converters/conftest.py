"""Make the repository's top-level ``converters`` and ``models`` folders importable.

They are not part of the installed ``onnxviz`` package. pytest puts ``tests/`` on ``sys.path``,
where ``tests/converters`` (this folder) would shadow the real package as a namespace package,
so the repository root goes first.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))
for name in ("converters", "models"):
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) is None:
        del sys.modules[name]  # a namespace package picked up from tests/
