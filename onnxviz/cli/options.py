"""Command-line flags for the explanation methods, built from the method registry.

The registry is the one source: each method's options are the keyword-only parameters of its
explainer's ``__init__`` (:meth:`onnxviz.explainers.Explainer.options`). Every option becomes a flag
(``batch_size`` -> ``--batch-size``) in a per-method help group; an option several methods share is
one flag; a name taken by another flag gets the method as prefix (``--lime-alpha``).

Values arrive as text and are converted per method from the parameter's default and annotation
(ints, floats, ``a,b`` tuples, numbers-or-names such as IG's ``baseline``). Without an annotation
the default's type decides, and the options in :data:`MULTI_VALUE` also take comma lists and numbers
(occlusion's ``--patch 16,32``, ``--fill 0``). A bad value is an
:class:`~onnxviz.errors.OptionError` naming the flag, never a traceback.
"""

from __future__ import annotations

import argparse
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

#: Flags the subcommands use for themselves: a method option with one of these names is
#: always prefixed with its method (``--lime-alpha``), in every command alike.
RESERVED = frozenset({"alpha", "cmap", "clip", "threshold", "top_percent", "out", "json",
                      "debug", "quiet", "method", "methods", "target", "top", "image", "images",
                      "model", "input", "output", "labels", "preprocess", "threads", "gradients",
                      "npy", "strict", "title", "quick", "channels", "engine", "address"})


def describe_range(opt: str, uses) -> str:
    """The declared range or vocabulary of an option, for its help (per method where the
    methods sharing the flag declare different ones)."""
    from ..explainers.ranges import INSIDE

    reg = registry()
    methods = [m for m, _ in uses if m in reg.methods()]
    if not methods:  # a function's options (filters, dream)
        spec = INSIDE.get(opt)
        return spec.describe() if spec else ""
    said: dict[str, list[str]] = {}
    for m in methods:
        spec = reg.get(m).option_specs().get(opt)
        if spec is not None:
            said.setdefault(spec.describe(), []).append(m)
    if len(said) <= 1:
        return next(iter(said), "")
    return "; ".join(f"{', '.join(ms)}: {text}" for text, ms in said.items())


#: Method options that are also model options (one flag feeds both).
SHARED_WITH_MODEL = frozenset({"batch_size"})


def registry():
    from ..explainers import registry as reg

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


def _is_bool(uses) -> bool:
    return all(isinstance(p.default, bool) for _, p in uses)


def describe_default(p: inspect.Parameter) -> str:
    d = p.default
    if d is inspect.Parameter.empty:
        return "required"
    if isinstance(d, tuple):
        return ",".join(str(v) for v in d)
    return "auto" if d is None else str(d)


def add_method_options(parser: argparse.ArgumentParser, names=None) -> dict[str, str]:
    """Add one flag per method option; returns ``{option: argparse dest}``.

    Options of one method go in a help group titled with the method; options shared by several
    methods go in one group listing who uses them. ``--batch-size`` is also a model option: one flag
    feeds both. Another name the parser already has gets the method as prefix (LIME's ridge
    ``alpha`` becomes ``--lime-alpha`` next to the overlay's ``--alpha``).
    """
    reg = registry()
    return add_options(parser, option_table(names),
                       lambda m: (f"{m} options", getattr(reg.get(m), "summary", "") or None))


def function_options(func, skip=()) -> dict[str, list[tuple[str, inspect.Parameter]]]:
    """The keyword-only parameters of ``func`` as an option table (see :func:`option_table`)."""
    sig = inspect.signature(func)
    return {n: [(func.__name__, p)] for n, p in sig.parameters.items()
            if p.kind is p.KEYWORD_ONLY and n not in skip}


def add_options(parser: argparse.ArgumentParser, table: dict, group_of) -> dict[str, str]:
    """Add flags for an option table; ``group_of(owner)`` gives a help group's (title, text)."""
    dests: dict[str, str] = {}
    shared = None
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt, uses in table.items():
        fl = flag(opt)
        existing = parser._option_string_actions.get(fl)
        if existing is not None and opt in SHARED_WITH_MODEL:
            dests[opt] = existing.dest
            continue
        if existing is not None or opt in RESERVED:  # LIME's ridge --lime-alpha vs the
            # overlay's --alpha: the same name in every command, whether or not it has --alpha
            fl = flag(f"{uses[0][0] if len(uses) == 1 else 'method'}_{opt}")
        if len(uses) > 1:
            if shared is None:
                shared = parser.add_argument_group(
                    "method options shared by several methods",
                    "given once, they apply to every chosen method that has them")
            group = shared
            who = ", ".join(f"{m} (default {describe_default(p)})" for m, p in uses)
            help_text = f"used by {who}"
        else:
            owner, p = uses[0]
            if owner not in groups:
                groups[owner] = parser.add_argument_group(*group_of(owner))
            group = groups[owner]
            help_text = f"default {describe_default(p)}"
        spec = describe_range(opt, uses)
        if spec:
            help_text += f"; {spec}"
        dest = "opt_" + opt
        if _is_bool(uses):
            group.add_argument(fl, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(fl, dest=dest, default=None, metavar=opt.upper(), help=help_text)
        dests[opt] = dest
    before = parser.get_default("_method_option_dests") or {}
    parser.set_defaults(_method_option_dests={**before, **dests})
    return dests


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


def given_options(args) -> dict[str, object]:
    """``{option: raw value}`` for every method option given on the command line."""
    dests = getattr(args, "_method_option_dests", {}) or {}
    return {opt: getattr(args, dest) for opt, dest in dests.items()
            if getattr(args, dest, None) is not None}


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
    """Convert a command-line value for the parameter ``p`` (see the module docstring)."""
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


def add_method_arg(parser: argparse.ArgumentParser, *, required: bool = False,
                   default: str = "all") -> None:
    """``--method/-m`` (alias ``--methods``): one method, a comma list or ``all``, repeatable; the
    same flag in every command. Parse the value with :func:`parse_methods`."""
    names = registry().methods()
    parser.add_argument("--method", "--methods", "-m", dest="methods", action="append",
                        required=required, metavar="M[,M...]",
                        help=f"a method, a comma list or 'all'"
                             f"{'' if required else f' (default {default})'}: {', '.join(names)}")


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
