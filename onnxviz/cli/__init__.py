"""The ``onnxviz`` console script: one subcommand per module, each registering itself.

Each module named in :data:`SUBCOMMANDS` defines ``register(subparsers)``, which adds its parser
and calls ``set_defaults(func=run)``; ``run(args)`` returns an exit status (or None for 0). Modules
not written yet are skipped, so a subcommand is added by writing its module. User errors
(:class:`onnxviz.OnnxvizError`) print one line and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("inspect", "predict", "explain", "activations", "filters", "dream", "report",
               "bench", "demo", "convert", "serve", "evaluate", "snapshot", "check")


class _Broken:
    """A subcommand whose module fails to import: the others keep working; running it raises."""

    def __init__(self, name: str, error: BaseException):
        self.name, self.error = name, error

    def register(self, subparsers) -> None:
        p = subparsers.add_parser(self.name, help=f"(unavailable: {type(self.error).__name__})",
                                  add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=self.run)

    def run(self, args):
        raise self.error


def _modules():
    for name in SUBCOMMANDS:
        try:
            yield importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:  # a subcommand not built yet
            if e.name != f"{__name__}.{name}":
                yield _Broken(name, e)
        except Exception as e:  # a bug in one subcommand must not take the others down
            yield _Broken(name, e)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (``onnxviz explain: error: ...``), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    from .. import __version__

    parser = Parser(
        prog="onnxviz",
        description="See what an image classifier exported to ONNX looks at.",
    )
    parser.add_argument("--version", action="version", version=f"onnxviz {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _modules():
        mod.register(sub)
    from .examples import add_examples

    add_examples(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``onnxviz`` console script; returns the exit status."""
    from ..errors import OnnxvizError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args, unknown)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    debug = args.debug or getattr(args, "sub_debug", False)
    import warnings

    shown = warnings.showwarning
    if not debug:  # warnings as one line each, like errors
        warnings.showwarning = _one_line_warning
    try:
        status = args.func(args)
    except OnnxvizError as e:
        if debug:
            raise
        print(f"onnxviz: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("onnxviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # not a user error: still one line, the traceback with --debug
        if debug:
            raise
        from ..errors import as_error

        print(f"onnxviz: error: {as_error(e, args.command)} (--debug shows the traceback)",
              file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown
    return int(status or 0)


def _refuse_unknown(parser: argparse.ArgumentParser, args, unknown: list[str]) -> None:
    """Exit 2 naming the arguments the command does not know, with the closest flag of that
    command (``--stirde`` -> ``--stride``) and its own ``--help``."""
    import difflib

    sub, deeper = parser, True
    while deeper:  # down to the (sub)subcommand that was chosen: onnxviz convert pytorch
        deeper = False
        for action in sub._actions:
            chosen = getattr(args, action.dest, None) if isinstance(
                action, argparse._SubParsersAction) else None
            if chosen in (action.choices or {}):
                sub, deeper = action.choices[chosen], True
                break
    known = [s for a in sub._actions for s in a.option_strings if s.startswith("--")]
    hints = []
    for token in unknown:
        if token.startswith("-"):
            close = difflib.get_close_matches(token.split("=", 1)[0], known, n=1, cutoff=0.6)
            if close:
                hints.append((close[0], token.split("=", 1)[0]))
    if len(hints) == 1:
        hint = f" (did you mean {hints[0][0]}?)"
    else:
        hint = (" (did you mean " + ", ".join(f"{c} for {t}" for c, t in hints) + "?)"
                if hints else "")
    sub.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line; one raised outside onnxviz (torch's exporter, say) names the
    package it came from, and the same warning is printed once per command."""
    text = " ".join(str(message).split())
    origin = _origin(filename)
    if (origin, text) in _SHOWN:
        return
    _SHOWN.add((origin, text))
    where = "" if origin == "onnxviz" else f" from {origin}"
    print(f"onnxviz: warning{where}: {text}", file=sys.stderr)


_SHOWN: set = set()


def _origin(filename: str) -> str:
    """The top-level package a warning's file belongs to (``torch``, ``onnxviz``, ...)."""
    from pathlib import Path

    parts = Path(str(filename)).parts
    for i, part in enumerate(parts):
        if part in ("site-packages", "dist-packages") and i + 1 < len(parts):
            return parts[i + 1].split(".")[0].split("-")[0]
    if "onnxviz" in parts:
        return "onnxviz"
    return Path(str(filename)).stem or "python"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
