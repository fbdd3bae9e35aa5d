"""``gate.toml``: the rules' thresholds, for all methods and per method.

    [rules.rank_correlation]
    min = 0.8

    [rules.top_overlap]
    percent = 10
    min = 0.5

    [rules.roi]
    max_outside = 0.5

    [rules.deletion]
    enabled = false

    [methods.saliency.rules.rank_correlation]   # one method's own threshold
    min = 0.6

Rules and settings left out keep their defaults (:func:`onnxviz.gate.rules.settings`); an unknown
rule, setting or value type is an :class:`~onnxviz.errors.OptionError`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import OptionError
from . import rules as _rules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def defaults() -> dict[str, dict]:
    """``{rule: {setting: default}}`` for every rule."""
    return {name: _rules.settings(name) for name in _rules.RULES}


def load(path=None) -> dict:
    """Read ``path`` (or nothing: the defaults) into ``{"rules": ..., "methods": {m: rules}}``."""
    doc = {}
    if path is not None:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise OptionError(f"cannot read the gate config {p}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise OptionError(f"gate config {p} is not valid TOML: {e}") from None
    return parse(doc)


def parse(doc: dict) -> dict:
    """Check a config document and fill in the defaults."""
    unknown = set(doc) - {"rules", "methods"}
    if unknown:
        raise OptionError(f"gate config: unknown section {sorted(unknown)[0]!r}; "
                          "sections: rules, methods")
    base = _merge(defaults(), doc.get("rules", {}), "rules")
    methods = {}
    for m, sec in (doc.get("methods") or {}).items():
        if not isinstance(sec, dict) or set(sec) - {"rules"}:
            raise OptionError(f"gate config: [methods.{m}] may only hold [methods.{m}.rules.*]")
        methods[m] = _merge(base, sec.get("rules", {}), f"methods.{m}.rules")
    return {"rules": base, "methods": methods}


def for_method(config: dict, method: str) -> dict:
    """The rules' settings that apply to ``method``."""
    return config["methods"].get(method, config["rules"])


def _merge(base: dict, given: dict, where: str) -> dict:
    if not isinstance(given, dict):
        raise OptionError(f"gate config: [{where}] must be a table")
    out = {r: dict(v) for r, v in base.items()}
    for name, values in given.items():
        _rules.get(name)
        if not isinstance(values, dict):
            raise OptionError(f"gate config: [{where}.{name}] must be a table of settings")
        for key, value in values.items():
            if key not in out[name]:
                raise OptionError(f"gate config: rule {name!r} has no setting {key!r}; "
                                  f"settings: {', '.join(out[name])}")
            default = out[name][key]
            if isinstance(default, bool) != isinstance(value, bool) or (
                    not isinstance(default, bool)
                    and not isinstance(value, (int, float))):
                raise OptionError(f"gate config: {where}.{name}.{key} must be "
                                  f"{'true or false' if isinstance(default, bool) else 'a number'}"
                                  f", got {value!r}")
            out[name][key] = value
    return out
