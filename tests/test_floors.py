"""The layers of the package, held by its import graph (read with ``ast``; nothing is imported).

The floors are written once, here, lowest first (docs/internals.md draws the same map). A module
may import its own room, the rooms on its floor and the floors below; never a floor above. The
doors (server, Ray engine, gate, converters) share a floor but never import one another; the
command line is the top floor, and nothing outside ``onnxviz/cli`` imports it. Imports inside
functions count as much as those at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "onnxviz"

#: The floors, lowest first: each a tuple of rooms (a subpackage or a top-level module of
#: ``onnxviz``; ``onnxviz`` itself is the public API of ``onnxviz/__init__.py``).
FLOORS = (
    ("errors", "limits", "_once"),
    ("imageio", "runtime", "perturb", "autodiff", "detection", "data"),
    ("model", "incremental"),
    ("explainers", "metrics", "viz", "inside"),
    ("onnxviz",),
    ("results",),
    ("serve", "distributed", "gate", "convert"),
    ("cli",),
)

#: Rooms of one floor that must not import one another.
DOORS = frozenset(FLOORS[-2])

FLOOR = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    """``onnxviz.cli.explain`` -> ``cli``; ``onnxviz`` -> ``onnxviz``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_module(name: str) -> bool:
    """Whether ``onnxviz.a.b`` is a module or package of the source tree."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path):
    """``(line, imported module)`` for every import of an ``onnxviz`` module in ``path``,
    relative ones resolved (``from .. import viz`` in ``onnxviz/cli/x.py`` is ``onnxviz.viz``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "onnxviz":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "onnxviz":
                continue
            for alias in node.names:  # from . import tokens: the module named, if it is one
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if _is_module(sub) else target


def graph():
    """``(file, line, importer module, imported module)`` over the whole package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for line, target in imports(path):
            yield path.relative_to(PACKAGE.parent), line, module, target


def test_every_room_has_a_floor():
    rooms = {_room(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert rooms - set(FLOOR) == set(), "add the new room to FLOORS (and to docs/internals.md)"


def test_no_import_goes_up_a_floor():
    up = [f"{file}:{line}: {src} ({_room(src)}, floor {FLOOR[_room(src)]}) imports {dst} "
          f"({_room(dst)}, floor {FLOOR[_room(dst)]})"
          for file, line, src, dst in graph()
          if FLOOR[_room(dst)] > FLOOR[_room(src)]]
    assert up == []


def test_nothing_outside_the_cli_imports_it():
    found = [f"{file}:{line}: {src} imports {dst}" for file, line, src, dst in graph()
             if _room(dst) == "cli" and _room(src) != "cli"]
    assert found == []


def test_doors_do_not_import_each_other():
    found = [f"{file}:{line}: {src} imports {dst}" for file, line, src, dst in graph()
             if _room(src) in DOORS and _room(dst) in DOORS and _room(src) != _room(dst)]
    assert found == []


def test_the_graph_is_read():
    """The reader sees the imports it must judge (a reader that saw none would pass the rest)."""
    edges = {(src, dst) for _, _, src, dst in graph()}
    assert ("onnxviz.cli.explain", "onnxviz.results") in edges
    assert ("onnxviz.serve.params", "onnxviz.explainers.options") in edges
    assert ("onnxviz.cli.demo", "onnxviz.viz") in edges  # from .. import load, viz
    assert ("onnxviz.model.core", "onnxviz.model.grad") in edges  # inside a function
