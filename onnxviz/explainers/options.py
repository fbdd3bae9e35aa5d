"""The methods' options as text: names, values and targets checked against the method registry.

The registry is the one source: each method's options are the keyword-only parameters of its
explainer's ``__init__`` (:meth:`onnxviz.explainers.Explainer.options`), with ranges in
:mod:`.ranges`. Every door translates its own syntax into one call here: the command line its flags
(:mod:`onnxviz.cli.options` builds them from :func:`option_table`), the server the JSON values of a
request's ``parameters`` (:mod:`onnxviz.serve.params`), the Ray engine its job's options
(:func:`known_options`). An option is named as its flag in messages (``batch_size`` ->
``--batch-size``), so every door refuses a value with the same words.

Values arrive as text and are converted per method from the parameter's default and annotation
(ints, floats, ``a,b`` tuples, numbers-or-names such as IG's ``baseline``). Without an annotation
the default's type decides, and the options in :data:`MULTI_VALUE` also take comma lists and numbers
(occlusion's ``--patch 16,32``, ``--fill 0``). A bad value is an
:class:`~onnxviz.errors.OptionError` naming the flag, never a traceback.
"""

from __future__ import annotations

import inspect
import math

from ..errors import OptionError


#: Unannotated options that also take a comma list or a number: (h, w) sizes and per-channel or
#: numeric fills. Annotating a parameter (``int | tuple[int, int]``) makes this unnecessary.
MULTI_VALUE = frozenset({"patch", "stride", "fill"})


#: Options that take an array: on the command line, a ``.npy`` file (LIME's own superpixels).
ARRAY_FILES = frozenset({"segments"})


#: Options that take a word, a number or an array: a value ending in ``.npy`` is the array
#: (a baseline tensor or image, :mod:`onnxviz.explainers.baselines`); an image path stays text.
ARRAY_OR_VALUE = frozenset({"baseline", "fill"})


#: Method options that are also model options (one flag feeds both).
SHARED_WITH_MODEL = frozenset({"batch_size"})


def registry():
    from . import registry as reg

    return reg


def flag(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def option_table(names=None) -> dict[str, list[tuple[str, inspect.Parameter]]]:
    """``{option: [(method, parameter), ...]}`` over ``names`` (every method when None)."""
    reg = registry()
    table: dict[str, list] = {}
    for m in names or reg.methods():
        for opt, p in reg.get(m).options().items():
            table.setdefault(opt, []).append((m, p))
    return table


def function_options(func, skip=()) -> dict[str, list[tuple[str, inspect.Parameter]]]:
    """The keyword-only parameters of ``func`` as an option table (see :func:`option_table`)."""
    sig = inspect.signature(func)
    return {n: [(func.__name__, p)] for n, p in sig.parameters.items()
            if p.kind is p.KEYWORD_ONLY and n not in skip}


def function_kwargs(func, given: dict[str, object], skip=()) -> dict[str, object]:
    """The given options converted for ``func``'s keyword-only parameters."""
    table = function_options(func, skip)
    return {opt: convert(raw, table[opt][0][1], opt) for opt, raw in given.items() if opt in table}


def parse_channels(text: str | None):
    """``--channels``: ``0,3,5`` or ranges ``0-7`` (or both: ``0-3,9``); None stays None."""
    if text is None:
        return None
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo, hi = int(lo), int(hi)
                if hi < lo or hi - lo > 100_000:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise OptionError(f"--channels expects indices like 0,3,5 or 0-7, got {text!r}") \
                from None
    if any(c < 0 for c in out):
        raise OptionError(f"--channels must be >= 0, got {text!r}")
    return out


def method_kwargs(method: str, given: dict[str, object], strict: bool = True) -> dict[str, object]:
    """The keyword options for ``method`` out of ``given`` (see :func:`given_options`), converted.

    Args:
        method: registry name.
        given: raw values by option name.
        strict: raise when an option does not belong to ``method`` (``explain`` with one method);
            otherwise such options are ignored (several methods, each takes what it knows).
    """
    params = registry().get(method).options()
    out = {}
    for opt, raw in given.items():
        if opt not in params:
            if strict and not _model_option(opt):
                raise OptionError(f"method {method!r} has no option {flag(opt)}; its options: "
                                  f"{', '.join(flag(o) for o in params) or 'none'}")
            continue
        out[opt] = convert(raw, params[opt], opt)
    return out


def known_options(method: str, given: dict[str, object]) -> dict[str, object]:
    """``given`` (options as Python values, the API's ``{"patch": 8}``) for ``method``, refused
    when one of them is not an option of it; the values are checked by the explainer."""
    params = registry().get(method).options()
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise OptionError(f"method {method!r} has no option {', '.join(unknown)}; its options: "
                          f"{', '.join(params) or 'none'}")
    return dict(given)


def with_progress(method: str, kwargs: dict, show: bool) -> dict:
    """``kwargs`` plus ``progress=show`` for methods with a ``progress`` option not given."""
    if "progress" in registry().get(method).options() and "progress" not in kwargs:
        return {**kwargs, "progress": show}
    return kwargs


def _model_option(opt: str) -> bool:
    return opt in SHARED_WITH_MODEL  # fine to give with any method


def _scalar(text: str, kinds: list[str], opt: str):
    """Parse one value as the first kind of ``kinds`` (``int``, ``float``, ``str``) that fits."""
    text = text.strip()
    for kind in kinds:
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                continue
        if kind == "float":
            try:
                v = float(text)
            except ValueError:
                continue
            if not math.isfinite(v):
                raise OptionError(f"{flag(opt)} must be a finite number, got {text!r}")
            return v
        if kind == "str":
            if not text:
                raise OptionError(f"{flag(opt)} must not be empty")
            return text
    words = {"int": "an integer", "float": "a number", "str": "a name"}
    want = " or ".join(words[k] for k in kinds)
    raise OptionError(f"{flag(opt)} expects {want}, got {text!r}")


def _kinds(p: inspect.Parameter, opt: str = "") -> tuple[list[str], bool]:
    """Scalar kinds to try (in order) and whether a comma list (tuple) is accepted."""
    ann = str(p.annotation) if p.annotation is not inspect.Parameter.empty else ""
    d = p.default
    if isinstance(d, bool):
        return ["bool"], False
    if not ann:  # only the default to go by
        many = opt in MULTI_VALUE
        if isinstance(d, int):
            return ["int"], many
        if isinstance(d, float):
            return ["float"], many
        return (["int", "float", "str"] if many else ["str"]), many
    tuple_ok = isinstance(d, (tuple, list)) or "tuple" in ann or "list" in ann or "Sequence" in ann
    kinds = []
    if isinstance(d, int):
        kinds.append("int")
    elif isinstance(d, float):
        kinds.append("float")
    elif isinstance(d, (tuple, list)) and d:
        kinds.append("int" if all(isinstance(v, int) for v in d) else "float")
    for word, kind in (("int", "int"), ("float", "float"), ("str", "str")):
        if word in ann and kind not in kinds:
            kinds.append(kind)
    if isinstance(d, str) and "str" not in kinds:
        kinds.append("str")
    if "float" in kinds and "int" in kinds and not isinstance(d, int):
        kinds.remove("int")  # "a number": 3 -> 3.0 where the default is a float
    if not kinds:
        kinds = ["int", "float", "str"]
    return kinds, tuple_ok


def convert(raw, p: inspect.Parameter, opt: str):
    """Convert a value given as text (a flag's, a JSON parameter's) for the parameter ``p``
    (see the module docstring)."""
    if opt in ARRAY_FILES or (opt in ARRAY_OR_VALUE and isinstance(raw, str)
                              and raw.strip().lower().endswith(".npy")):
        return load_array(raw.strip() if isinstance(raw, str) else raw, opt)
    if isinstance(raw, bool):
        if not isinstance(p.default, bool):
            raise OptionError(f"{flag(opt)} takes a value")
        return raw
    kinds, tuple_ok = _kinds(p, opt)
    if kinds == ["bool"]:
        low = str(raw).strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise OptionError(f"{flag(opt)} expects true or false, got {raw!r}")
    text = str(raw)
    if p.default is None and text.strip().lower() == "auto":
        return None  # the reference and the help show a None default as "auto"
    if "," in text:
        if not tuple_ok:
            raise OptionError(f"{flag(opt)} takes one value, got the list {text!r}")
        value = tuple(_scalar(t, kinds, opt) for t in text.split(","))
    else:
        value = _scalar(text, kinds, opt)
    if opt == "seed" and (not isinstance(value, int) or value < 0):
        raise OptionError(f"--seed must be an integer >= 0 (numpy's generators), got {text!r}")
    return value


def load_array(path, opt: str):
    """An option's array from a ``.npy`` file (no pickles)."""
    import numpy as np

    from .. import limits

    path = limits.regular_file(path, f"{flag(opt)} file", OptionError,
                               max_bytes=limits.memory_budget())
    try:
        with open(path, "rb") as f:  # the header's shape, before numpy allocates it
            version = np.lib.format.read_magic(f)
            shape = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                     else np.lib.format.read_array_header_2_0(f))[0]
        limits.check_memory(8 * math.prod(shape), f"{flag(opt)} array of shape {shape}")
        return np.load(str(path), allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        why = "not a .npy array file" if "pickle" in str(e) else str(e)
        raise OptionError(f"{flag(opt)} expects a .npy file of an array: {path!r}: {why}") from None


def parse_methods(text: str | list[str]) -> list[str]:
    """``"gradcam,lime"`` (or a list of such, or ``all``) -> registered method names, in order."""
    reg = registry()
    parts = [text] if isinstance(text, str) else list(text)
    names = [n.strip() for part in parts for n in part.split(",") if n.strip()]
    if not names:
        raise OptionError(f"no method given; choose from: {', '.join(reg.methods())}")
    out = []
    for n in names:
        for m in (reg.methods() if n == "all" else [n]):
            reg.get(m)  # raises with suggestions for an unknown name
            if m not in out:
                out.append(m)
    return out


def for_model(methods: list[str], spec, model) -> list[str]:
    """``methods`` as parsed from ``spec``; where ``spec`` said ``all``, without the methods that
    do not apply to ``model`` (``Explainer.applies_to``). Named methods are kept."""
    reg = registry()
    parts = [spec] if isinstance(spec, str) else list(spec)
    named = {n.strip() for part in parts for n in part.split(",")}
    if "all" not in named:
        return methods
    return [m for m in methods if m in named or reg.get(m).applies_to(model) is None]


def parse_target(text: str | None):
    """``--target``: a class index, a label, or None (top-1)."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        raise OptionError("--target must not be empty")
    try:
        return int(text)
    except ValueError:
        return text
