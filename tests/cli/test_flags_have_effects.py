"""Every flag of ``onnxviz explain`` does something, with either engine (issue 20, 2).

``--engine ray --npy`` wrote no ``.npy`` file and said nothing; ``--strict`` and ``--memory`` were
read by the local engine only, and ``--gradients`` on a float model was dropped in silence. Here
each flag is given with a value other than its default and what the command did is compared with
the run without it: the files written (and their bytes), stdout, warnings, exit status, what
reached :func:`onnxviz.load` and the memory budget; with Ray, what reached
``explain_dataset``. A flag that changes none of these fails the test, and so does a new flag
that this table does not list (method options are checked per method by the explainers' tests:
they reach the explainer through one function, ``cli/options.py:method_kwargs``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys

import pytest
from viz_cli_helpers import LABELS, photo, write_png, write_tiny_model

import onnxviz
from onnxviz import limits
from onnxviz.cli import build_parser, main

#: flag -> its arguments (a value that is not the default)
VARIANTS = {
    "--target": ["1"],
    "--npy": [],
    "--strict": [],
    "--json": [],
    "--quiet": [],
    "--out": ["other"],
    "--cmap": ["viridis"],
    "--alpha": ["0.8"],
    "--clip": ["5"],
    "--threshold": ["0.9"],
    "--top-percent": ["10"],
    "--preprocess": ["raw"],
    "--labels": ["LABELS"],
    "--input": ["x"],
    "--output": ["logits"],
    "--threads": ["1"],
    "--batch-size": ["2"],
    "--gradients": ["surrogate"],
    "--task": ["detect"],
    "--layout": ["yolov8"],
    "--memory": ["3G"],
    "--engine": ["ray"],  # the other engine: compared on the local engine only
    "--address": ["127.0.0.1:1"],
    "--workers": ["1"],
    "--retry-errors": [],
    "--no-png": [],
    "--verbose": [],
}
#: flags whose effect is checked elsewhere, with where.
ELSEWHERE = {
    "--method": "the method run: every test of tests/cli",
    "--debug": "the traceback on errors: tests/cli/test_explain.py",
    "--help": "argparse",
    "--box": "a user's box on the bundled detector: tests/detection/test_doors.py",
    "--mask": "a user's region on the bundled segmenter: tests/detection/test_doors.py",
    "--score-threshold": "the boxes explained: tests/detection/test_doors.py",
    "--iou-threshold": "the boxes explained: tests/detection/test_doors.py",
    "--max-detections": "the boxes explained: tests/detection/test_doors.py",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("effects")
    labels = d / "labels.txt"
    labels.write_text("\n".join(f"{n} (file)" for n in LABELS))
    broken = d / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    return {"tiny": write_tiny_model(d / "tiny.onnx"), "img": write_png(d / "pic.png", photo()),
            "broken": broken, "labels": labels}


def test_the_table_lists_every_flag():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["explain"]
    dests = sub.get_default("_method_option_dests")
    flags = {s for a in sub._actions for s in a.option_strings if s.startswith("--")
             and a.dest not in dests.values()}
    long = {s for s in flags if not s.startswith("--no-") or s == "--no-png"}
    missing = long - set(VARIANTS) - set(ELSEWHERE) - {"--methods"}
    assert not missing, f"flags without an effect check: {sorted(missing)}"


def _argv(files, root, flag):
    args = [a if a != "LABELS" else str(files["labels"]) for a in VARIANTS.get(flag, [])]
    if flag == "--out":
        args = [str(root / "other")]
    base = ["explain", str(files["tiny"]), str(files["img"]), str(files["broken"]), "-m",
            "gradcam", "--out", str(root / "out")]
    return base + ([flag, *args] if flag else [])


def _observe(files, root, flag, monkeypatch, capsys, engine):
    """What the command did: files, stdout, warnings, status, load() keywords, the budget."""
    seen: dict = {}
    real_load = onnxviz.load

    def spy_load(*a, **k):
        seen["load"] = {key: str(v) for key, v in k.items()}
        return real_load(*a, **k)

    def fake_dataset(model, images, **k):
        seen["dataset"] = {key: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
                           for key, v in k.items()}

        class Summary:
            def line(self):
                return "summary"

            def to_dict(self):
                return {"summary": 1}
        return Summary()

    real_budget = limits.set_memory_budget

    def spy_budget(value):
        seen.setdefault("budget", []).append(value)
        return real_budget(value)

    monkeypatch.setattr(onnxviz, "load", spy_load)
    monkeypatch.setattr("onnxviz.distributed.job.explain_dataset", fake_dataset)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    old = limits.set_memory_budget(None)
    monkeypatch.setattr(limits, "set_memory_budget", spy_budget)
    argv = _argv(files, root, flag) + (["--engine", "ray"] if engine == "ray" else [])
    try:
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    finally:
        real_budget(old)
    out, err = capsys.readouterr()
    out = re.sub(r"\d+\.\d+ s\b", "T s", out)
    lines = []
    for line in out.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        rec.pop("timings", None)
        lines.append(json.dumps(rec, sort_keys=True))
    written = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            written[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
    for p in list(root.iterdir()):  # each run starts from an empty folder
        import shutil

        shutil.rmtree(p) if p.is_dir() else p.unlink()
    warnings = sorted(ln[ln.index("onnxviz"):] for ln in err.splitlines()
                      if "onnxviz: warning" in ln or "onnxviz: error" in ln)
    return {"code": code, "out": lines, "files": written, "warnings": warnings,
            "progress": "explaining" in err, **seen}


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_every_flag_changes_what_explain_does(files, tmp_path, monkeypatch, capsys, engine):
    pytest.importorskip("ray") if engine == "ray" else None
    base = _observe(files, tmp_path, None, monkeypatch, capsys, engine)
    assert base["code"] == 0, base
    assert base["files"] if engine == "local" else base["dataset"], base
    again = _observe(files, tmp_path, None, monkeypatch, capsys, engine)
    assert again == base  # the observation is deterministic: a difference is the flag's doing
    for flag in VARIANTS:
        if engine == "ray" and flag == "--engine":
            continue
        seen = _observe(files, tmp_path, flag, monkeypatch, capsys, engine)
        assert seen != base, f"{flag} has no effect with the {engine} engine"


def test_ray_npy_reaches_the_workers(files, tmp_path, monkeypatch, capsys):
    """With Ray, --npy asks the workers for the .npy files (the Render they draw with)."""
    pytest.importorskip("ray")
    seen = _observe(files, tmp_path, "--npy", monkeypatch, capsys, "ray")
    assert seen["dataset"]["render"]["npy"] is True
    refused = _observe(files, tmp_path, "--npy", monkeypatch, capsys, "ray")
    assert refused["code"] == 0
    code = main(_argv(files, tmp_path, "--npy") + ["--engine", "ray", "--no-png"])
    assert code == 2 and "--no-png" in capsys.readouterr().err
