"""The onnxviz metadata written by every converter (``docs/internals.md``, "Model metadata").

Two ``metadata_props`` entries:

* ``onnxviz.preprocess``: JSON, ``{"preset": name}`` or
  ``{"mean": [..], "std": [..], "scale": s, "channel_order": "RGB"|"BGR"}`` meaning
  ``x = (pixels[..., order] * scale - mean) / std`` with RGB pixels in [0, 255].
* ``onnxviz.labels``: JSON list of class names.
* ``onnxviz.task`` (optional): ``classify``, ``detect`` or ``segment``; ``onnxviz.layout``
  (optional, detectors): the raw head's layout (:data:`onnxviz.detection.LAYOUTS`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Sequence

import onnx

from ..errors import OnnxvizError

PRESETS = ("imagenet", "tf", "caffe", "unit", "raw")
PREPROCESS_KEY = "onnxviz.preprocess"
LABELS_KEY = "onnxviz.labels"
TASK_KEY = "onnxviz.task"
LAYOUT_KEY = "onnxviz.layout"
TASKS = ("classify", "detect", "segment")


class ConverterError(OnnxvizError, ValueError):
    """A converter was given an option it cannot use, or its framework is not installed; the
    message says what to pass or install instead (the CLI prints it and exits 2)."""


def require(modules: Sequence[str], framework: str, extra: str) -> None:
    """Raises :class:`ConverterError` with the install command when a module is not installed.

    Args:
        modules: top-level modules the converter imports (looked up, not imported).
        framework: the framework's name as people know it (``PyTorch``).
        extra: the onnxviz extra that installs it (``pytorch`` for ``onnxviz[pytorch]``).
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConverterError(f"{framework} is not installed (no module {', '.join(missing)}): "
                             f"pip install 'onnxviz[{extra}]'")


def preprocess_spec(preprocess: str | dict | None) -> dict | None:
    """Validates a preprocessing description and returns its JSON-ready dict.

    Args:
        preprocess: a preset name (``imagenet``, ``tf``, ``caffe``, ``unit``, ``raw``), a JSON
            string, a dict with ``preset`` or ``mean``/``std``/``scale``/``channel_order``, or None.

    Returns:
        The dict written to ``onnxviz.preprocess``, or None when ``preprocess`` is None.
    """
    if preprocess is None:
        return None
    if isinstance(preprocess, str):
        text = preprocess.strip()
        if text.startswith("{"):
            preprocess = json.loads(text)
        elif text in PRESETS:
            return {"preset": text}
        else:
            raise ConverterError(
                f"unknown preprocessing {text!r}: use one of {', '.join(PRESETS)} or a JSON object "
                'like {"mean": [127, 127, 127], "std": [128, 128, 128], "scale": 1, '
                '"channel_order": "RGB"}'
            )
    if "preset" in preprocess:
        if preprocess["preset"] not in PRESETS:
            raise ConverterError(f"unknown preset {preprocess['preset']!r}; known: {', '.join(PRESETS)}")
        return {"preset": preprocess["preset"]}
    return _custom_spec(preprocess)


def _custom_spec(spec: dict) -> dict:
    unknown = set(spec) - {"mean", "std", "scale", "channel_order"}
    if unknown:
        raise ConverterError(f"unknown preprocessing keys {sorted(unknown)}; use mean, std, scale, channel_order")
    out = {
        "mean": [float(v) for v in _triple(spec.get("mean", 0.0))],
        "std": [float(v) for v in _triple(spec.get("std", 1.0))],
        "scale": float(spec.get("scale", 1.0)),
        "channel_order": str(spec.get("channel_order", "RGB")).upper(),
    }
    if out["channel_order"] not in ("RGB", "BGR"):
        raise ConverterError(f"channel_order must be RGB or BGR, not {out['channel_order']!r}")
    if any(s == 0 for s in out["std"]):
        raise ConverterError("std must not contain zeros")
    return out


def _triple(value) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * 3
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ConverterError(f"mean/std need 1 or 3 values, got {len(values)}")
    return values


def read_labels(labels: Sequence[str] | str | Path | None) -> list[str] | None:
    """Returns class names from a list, ``"imagenet"`` (the 1000 ImageNet classes, as every other
    command reads the word), or a text file with one name per line (or a JSON list)."""
    if labels is None:
        return None
    if isinstance(labels, str) and labels.strip().lower() == "imagenet":
        from ..model.labels import imagenet_labels

        return list(imagenet_labels())
    if isinstance(labels, str) and labels.lstrip().startswith("["):  # a JSON list as text
        text = labels
    elif isinstance(labels, (str, Path)):
        try:
            text = Path(labels).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ConverterError(f"labels: cannot read {str(labels)!r} ({why}); give a text file "
                                 "with one class name per line, a JSON list, or 'imagenet'") from None
    else:
        return [str(v) for v in labels]
    if text.lstrip().startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except ValueError as e:
            raise ConverterError(f"labels: {str(labels)[:60]!r} is not a JSON list ({e})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_metadata(model: onnx.ModelProto, preprocess=None, labels=None, task=None,
                   layout=None) -> onnx.ModelProto:
    """Sets ``onnxviz.preprocess``, ``onnxviz.labels`` and, when given, ``onnxviz.task`` and
    ``onnxviz.layout`` in ``model.metadata_props`` (in place).

    Args:
        model: the exported model.
        preprocess: anything :func:`preprocess_spec` accepts.
        labels: anything :func:`read_labels` accepts.
        task: ``classify``, ``detect`` or ``segment``; None writes nothing.
        layout: a detector's head layout (``yolov8``, ``yolov5``); None writes nothing.

    Returns:
        ``model``, for chaining.
    """
    entries = {}
    if task is not None:
        if task not in TASKS:
            raise ConverterError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        entries[TASK_KEY] = task
    if layout is not None:
        from ..detection import LAYOUTS

        if layout not in LAYOUTS:
            raise ConverterError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        entries[LAYOUT_KEY] = layout
    spec = preprocess_spec(preprocess)
    if spec is not None:
        entries[PREPROCESS_KEY] = json.dumps(spec)
    names = read_labels(labels)
    if names is not None:
        entries[LABELS_KEY] = json.dumps(names)
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    return model


def read_metadata(model: onnx.ModelProto) -> dict:
    """Returns ``{"preprocess": dict|None, "labels": list|None}`` from a model's metadata, plus
    ``task`` and ``layout`` where the file says them."""
    props = {p.key: p.value for p in model.metadata_props}
    return {
        "preprocess": json.loads(props[PREPROCESS_KEY]) if PREPROCESS_KEY in props else None,
        "labels": json.loads(props[LABELS_KEY]) if LABELS_KEY in props else None,
        **{k: props[key] for k, key in (("task", TASK_KEY), ("layout", LAYOUT_KEY))
           if key in props},
    }


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    """Saves a model as one self-contained file (weights inline; bundled models stay < 2 GB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=False)
    return path


def cli_main(name: str, argv: Sequence[str] | None = None) -> int:
    """``python -m onnxviz.convert.NAME ARGS``: the same as ``onnxviz convert NAME ARGS`` (the
    converter's ``add_arguments`` and ``run``; an error is one line and exit status 2, a bad flag
    too, ``--debug`` shows the traceback). The converters stand below the command line
    (docs/internals.md), so this runs them without it."""
    import argparse
    import importlib
    import sys

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    mod = importlib.import_module(f"onnxviz.convert.{name}")
    parser = Parser(prog=f"onnxviz convert {name}", description=mod.__doc__.split("\n\n")[0],
                    allow_abbrev=False)
    mod.add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(mod.run(args) or 0)
    except Exception as e:  # noqa: BLE001 - one line, as the command line says it
        if args.debug:
            raise
        from ..errors import as_error

        why = e if isinstance(e, OnnxvizError) else f"{as_error(e, 'convert')} (--debug shows " \
                                                      "the traceback)"
        print(f"onnxviz: error: {why}", file=sys.stderr)
        return 2
