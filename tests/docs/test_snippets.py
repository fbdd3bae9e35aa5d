"""Every Python block of README.md and docs/*.md runs, so the docs cannot rot.

The blocks of one page run in order, in one namespace (a page builds on its earlier blocks, as a
reader does), in a temporary folder holding ``cat.jpg`` and ``coffee.jpg`` (scikit-image's photos)
with this environment's ``onnxviz`` on ``PATH``. Each block is compiled with the page as its file
name and its own line numbers, so a failure's traceback points at the page and line. A block whose
first line is ``# snippet: compile-only (reason)`` is only compiled. Relative links between the
pages must lead to files and headings that exist.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
COMPILE_ONLY = re.compile(r"#\s*snippet:\s*compile-only\s*\((?P<why>[^)]+)\)")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the block's first code line in the page
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The ```python fenced blocks of a Markdown page."""
    out, code, start = [], None, 0
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if code is None:
            if re.fullmatch(r"\s*```python\s*", line):
                code, start = [], n + 1
        elif re.fullmatch(r"\s*```\s*", line):
            out.append(Block(page, start, "\n".join(code) + "\n"))
            code = None
        else:
            code.append(line)
    assert code is None, f"{page.relative_to(ROOT)}:{start}: unclosed ```python block"
    return out


def _write_photos(folder: Path) -> None:
    import cv2
    import skimage.data

    for name, rgb in (("cat.jpg", skimage.data.chelsea()), ("coffee.jpg", skimage.data.coffee())):
        assert cv2.imwrite(str(folder / name), rgb[..., ::-1])


def test_the_pages_have_python_blocks():
    counts = {p.name: len(python_blocks(p)) for p in PAGES}
    assert counts["README.md"] >= 4
    assert sum(counts.values()) >= 15, counts


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path, monkeypatch):
    _write_photos(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__snippet__"}
    for block in python_blocks(page):
        marker = COMPILE_ONLY.match(block.code.lstrip())
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        if marker:
            assert marker["why"].strip(), f"{block.where}: say why the block cannot run"
            continue
        try:
            exec(code, namespace)
        except Exception as exc:  # noqa: BLE001 - reported with the page and line
            tb = "".join(traceback.format_exception(exc)[-6:])
            pytest.fail(f"{block.where}: the block failed: {type(exc).__name__}: {exc}\n{tb}",
                        pytrace=False)


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lstrip("#").strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(line) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to nothing: {broken}"
