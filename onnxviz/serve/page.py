"""The browser page of ``onnxviz serve`` and the one endpoint it needs that the protocols lack.

The page (``onnxviz/serve/ui/``: one HTML file, one script, one style sheet, no build step, no
framework, nothing fetched from elsewhere) is a client like any other: it explains and predicts
through ``/v1/models/NAME:predict`` and ``:explain`` and reads ``/v2/models/NAME``. What neither
KServe protocol can say is which options each method takes, so ``GET /v1/methods`` lists them,
read from the method registry (:meth:`onnxviz.explainers.Explainer.options` and
:meth:`~onnxviz.explainers.Explainer.option_specs`, the tables the command line's help and the
server's checks read) with the server's caps. The sample photos are scikit-image's, read as
``onnxviz.read_image("skimage:NAME")`` reads them.
"""

from __future__ import annotations

import functools
import inspect
from importlib import resources

from ..explainers import registry
from ..explainers.ranges import Range, Words
from .limits import REFUSED

#: The files of the page, by URL name, with their media types.
FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
         "style.css": "text/css; charset=utf-8"}
#: The sample photos offered by the page (scikit-image's, shipped with it).
SAMPLES = ("chelsea", "astronaut", "coffee", "rocket")


@functools.lru_cache(maxsize=None)
def static(name: str) -> bytes:
    """The bytes of one file of the page."""
    return resources.files(__package__).joinpath("ui", name).read_bytes()


@functools.lru_cache(maxsize=None)
def sample(name: str) -> bytes:
    """A sample photo as PNG bytes (lossless: the pixels ``read_image("skimage:NAME")`` gives)."""
    from ..imageio import read_image
    from ..viz import encode_png

    return encode_png(read_image(f"skimage:{name}"))


def methods_info(methods: list[str], models: dict, caps: dict) -> dict:
    """The ``GET /v1/methods`` answer: per served method (the default first) its one-line
    summary, its options (type, range or choices, default, the server's cap) and, per model,
    why it cannot explain it (``null`` where it can)."""
    return {"default": methods[0], "methods": [_method(m, models, caps) for m in methods]}


def _method(name: str, models: dict, caps: dict) -> dict:
    cls = registry.get(name)
    specs = cls.option_specs()
    options = [_option(opt, p, specs.get(opt), caps.get(opt))
               for opt, p in cls.options().items() if opt not in REFUSED]
    return {"name": name, "summary": getattr(cls, "summary", ""), "options": options,
            "refuses": {n: _refusal(cls, s.model) for n, s in models.items()}}


def _refusal(cls, model) -> str | None:
    """Why ``cls`` cannot explain ``model`` (None where it can)."""
    task = getattr(model, "task", "classify")
    if getattr(cls, "boxes_only", False) and task != "detect":
        return f"{cls.name} explains the boxes of object detectors; this model is a {task} model"
    try:
        return cls.applies_to(model)
    except Exception as e:  # noqa: BLE001 - a probe that cannot tell says why
        return str(e).splitlines()[0] if str(e) else type(e).__name__


def _option(name: str, p: inspect.Parameter, spec, cap) -> dict:
    """One option: ``type`` (``bool``, ``int``, ``float``, ``word`` or ``text``), ``default``,
    and where declared ``low``/``high`` (with ``open_low``/``open_high``), ``pair`` (an
    ``h,w`` pair also accepted), ``choices`` (words), ``none`` (null: the method's own choice),
    ``describe`` (the command line's words) and ``cap`` (``{"min"|"max": bound}``)."""
    default = p.default
    out: dict = {"name": name, "default": _json(default)}
    if isinstance(default, bool):
        out["type"] = "bool"
    elif isinstance(spec, Words):
        out.update(type="word", choices=list(spec.choices), none=spec.none)
    elif isinstance(spec, Range):
        kind = "int" if spec.kind is int else "float"
        out.update(type=kind, low=spec.low, high=spec.high, open_low=spec.open_low,
                   open_high=spec.open_high, pair=spec.pair, none=spec.none)
        if spec.text:
            out["choices"] = list(spec.words)
    else:  # a name the method checks (a layer)
        out["type"] = "text"
    if spec is not None:
        out["describe"] = spec.describe()
    if cap is not None:
        out["cap"] = {cap[0]: cap[1]}
    return out


def _json(value):
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
