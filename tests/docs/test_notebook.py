"""docs/quickstart.ipynb runs top to bottom in a Jupyter kernel, and its explanations display as
pictures (HTML with an embedded PNG, and PNG)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "quickstart.ipynb"

pytestmark = pytest.mark.slow


def test_quickstart_notebook_runs_and_shows_explanations(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the "python3" kernel runs `python` from PATH: this environment's
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "commit the notebook without outputs"
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o.data for o in outputs if o.output_type in ("execute_result", "display_data")
             and "text/html" in o.data]
    explanations = [d for d in shown if "<figure" in d["text/html"]]
    assert len(explanations) == 4  # gradcam, saliency, occlusion, the shapes CNN
    for data in explanations:
        assert "data:image/png;base64," in data["text/html"] and data["image/png"]
    captions = " ".join(d["text/html"] for d in explanations)
    assert "gradcam: class 285 Egyptian cat" in captions and "class 281 tabby" in captions
    assert (tmp_path / "cat.gradcam.png").stat().st_size > 10_000
