"""Command-line flags for the explanation methods, built from the method registry.

The registry is the one source: each method's options are the keyword-only parameters of its
explainer's ``__init__`` (:meth:`onnxviz.explainers.Explainer.options`). Every option becomes a flag
(``batch_size`` -> ``--batch-size``) in a per-method help group; an option several methods share is
one flag; a name taken by another flag gets the method as prefix (``--lime-alpha``).

The flags' values are text; :mod:`onnxviz.explainers.options` converts and checks them (the same
code serves the server's JSON parameters), :func:`given_options` collects them from the parsed
arguments.
"""

from __future__ import annotations

import argparse
import inspect

from ..explainers.options import SHARED_WITH_MODEL, flag, option_table, registry


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


def given_options(args) -> dict[str, object]:
    """``{option: raw value}`` for every method option given on the command line."""
    dests = getattr(args, "_method_option_dests", {}) or {}
    return {opt: getattr(args, dest) for opt, dest in dests.items()
            if getattr(args, dest, None) is not None}


def add_method_arg(parser: argparse.ArgumentParser, *, required: bool = False,
                   default: str = "all") -> None:
    """``--method/-m`` (alias ``--methods``): one method, a comma list or ``all``, repeatable; the
    same flag in every command. Parse the value with :func:`parse_methods`."""
    names = registry().methods()
    parser.add_argument("--method", "--methods", "-m", dest="methods", action="append",
                        required=required, metavar="M[,M...]",
                        help=f"a method, a comma list or 'all'"
                             f"{'' if required else f' (default {default})'}: {', '.join(names)}")


