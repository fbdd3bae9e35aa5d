"""A request's ``parameters`` -> what to run: the method, its options, the targets, the outputs.

The method and its options go through the same code as the command line
(:func:`onnxviz.explainers.registry.get`, :func:`onnxviz.explainers.options.method_kwargs`), so a
name, a range or a type the CLI refuses is refused here with the same words, as a 400. JSON values
may be numbers, booleans, strings or lists (``"patch": [16, 16]`` is ``--patch 16,16``); ``null``
means the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError, TargetError
from ..explainers import options
from ..explainers.baselines import names_file
from .limits import REFUSED, check_options

#: What an explanation can carry besides its numbers: the coloured heatmap (PNG, model input
#: size), the overlay on the sent image (PNG, its size), the heatmap's float32 values.
OUTPUTS = ("heatmap_png", "overlay_png", "heatmap")
DEFAULT_OUTPUTS = ("heatmap_png", "overlay_png")

#: Keys of ``parameters`` that are not method options.
RESERVED = ("method", "target", "outputs", "top")


@dataclass(frozen=True)
class Job:
    """One request's explanation settings; requests with the same :attr:`key` share batches."""

    method: str
    kwargs: dict
    outputs: tuple[str, ...]

    @property
    def key(self) -> tuple:
        return (self.method, tuple(sorted((k, repr(v)) for k, v in self.kwargs.items())))


def parameters_of(body: dict) -> dict:
    """The request's ``parameters`` object ({} when absent)."""
    params = body.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise OptionError(f"'parameters' must be an object, got {type(params).__name__}")
    return params


def job_of(params: dict, methods: list[str], caps: dict) -> Job:
    """Validate ``params`` for an explanation.

    Args:
        params: the request's ``parameters``.
        methods: the methods this server explains with (``--method``); the first is the default.
        caps: the option caps (:mod:`onnxviz.serve.limits`).
    """
    method = params.get("method") or methods[0]
    if not isinstance(method, str):
        raise OptionError(f"'method' must be a name, got {type(method).__name__}")
    options.registry().get(method)  # an unknown name lists the close ones
    if method not in methods:
        raise OptionError(f"method {method!r} is not served here; served: {', '.join(methods)} "
                          "(onnxviz serve --method)")
    given = {}
    for opt, value in params.items():
        if opt in RESERVED or value is None:
            continue
        if opt in REFUSED:
            raise OptionError(f"option {opt!r} cannot be set over HTTP: {REFUSED[opt]}")
        if opt in options.ARRAY_OR_VALUE and names_file(value):
            raise OptionError(f"option {opt!r} cannot name a file over HTTP, got {value!r}: "
                              "give a word or a number (files are for the command line)")
        given[opt] = _raw(opt, value)
    kwargs = options.method_kwargs(method, given, strict=True)
    check_options(method, kwargs, caps)
    return Job(method, kwargs, outputs_of(params.get("outputs")))


def outputs_of(value) -> tuple[str, ...]:
    """``outputs``: a list or comma list of :data:`OUTPUTS` (default: the two PNGs)."""
    if value is None:
        return DEFAULT_OUTPUTS
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise OptionError(f"'outputs' must be a list of names from {', '.join(OUTPUTS)}")
    names = [n.strip() for n in names if n.strip()]
    bad = [n for n in names if n not in OUTPUTS]
    if bad:
        raise OptionError(f"unknown output {bad[0]!r}; choose from: {', '.join(OUTPUTS)}")
    return tuple(dict.fromkeys(names))


def targets_of(params: dict, count: int, model) -> list:
    """One target per image: ``target`` is one value for all or a list of ``count``; each a class
    index or label (checked now, so that a bad one fails only its request) or null (top-1)."""
    value = params.get("target")
    values = value if isinstance(value, list) else [value] * count
    if len(values) != count:
        raise TargetError(f"{len(values)} targets given for {count} images")
    out = []
    for t in values:
        if t is None:
            out.append(None)
            continue
        if isinstance(t, bool) or not isinstance(t, (int, str)):
            raise TargetError(f"a target must be a class index or a label, got {t!r}")
        scores = np.zeros((1, model.num_classes), np.float32)
        out.append(int(model.resolve_targets(t, scores)[0]))
    return out


def top_of(params: dict, num_classes: int) -> int:
    """``top`` of a prediction: how many classes per image (default 5)."""
    top = params.get("top", 5)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise OptionError(f"'top' must be an integer >= 1, got {top!r}")
    return min(top, num_classes)


def _raw(opt: str, value):
    """A JSON value as the command line would have given it (``[16, 16]`` -> ``"16,16"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and value and all(
            isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise OptionError(f"option {opt!r} takes a number, a name, true/false or a list of numbers, "
                      f"got {value!r}")
