"""The container files of docs/serve: the KServe manifest parses and has what KServe needs, the
Dockerfile's instructions are real ones, and both start ``onnxviz serve`` with flags it accepts."""

from __future__ import annotations

import json
import shlex

import pytest

from onnxviz.cli import build_parser
from tests.serve.helpers import REPO

yaml = pytest.importorskip("yaml")

DOCS = REPO / "docs" / "serve"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK",
                "SHELL"}


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in (DOCS / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word, rest.strip()))
            pending = ""
    assert not pending, "a continuation line at the end"
    return out


def test_dockerfile():
    steps = dockerfile()
    assert steps[0][0] == "FROM"
    assert all(word in INSTRUCTIONS for word, _ in steps), [w for w, _ in steps]
    args = dict(steps)
    assert 'pip install ".[serve]"' in args["RUN"]
    assert args["EXPOSE"] == "8080"
    command = json.loads(args["ENTRYPOINT"]) + json.loads(args["CMD"])
    assert command[:2] == ["onnxviz", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    parsed = build_parser().parse_args(command[1:])
    assert parsed.port == 8080 and parsed.func.__module__ == "onnxviz.cli.serve"
    for src in shlex.split(args["COPY"])[:-1]:
        assert (REPO / src).exists(), src


def test_kserve_manifest():
    docs = list(yaml.safe_load_all((DOCS / "inferenceservice.yaml").read_text()))
    assert len(docs) == 1
    isvc = docs[0]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    name = isvc["metadata"]["name"]
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container" and container["image"]
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    args = [str(a) for a in container["args"]]
    parsed = build_parser().parse_args(["serve", *args])
    assert parsed.models[0].split("=")[0] == name  # KServe routes /v1/models/<name>:...
