"""Option checks shared by every explainer family and by :mod:`onnxviz.inside`.

Each check raises :class:`~onnxviz.errors.OptionError` naming the option, what it must be and
what was given.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError


def check_positive(name: str, value, *, integer: bool = True) -> None:
    """Raise :class:`OptionError` unless ``value`` is a positive (integer) number."""
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if not ok or isinstance(value, bool) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise OptionError(f"{name} must be {kind}, got {value!r}")


def check_positive_ints(**values) -> None:
    """:func:`check_positive` (integers) on each keyword: ``check_positive_ints(steps=steps)``."""
    for name, value in values.items():
        check_positive(name, value)


def check_fraction(name: str, value) -> None:
    """Raise :class:`OptionError` unless ``value`` is a number in [0, 1)."""
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not ok or not 0 <= value < 1:
        raise OptionError(f"{name} must be a number in [0, 1), got {value!r}")


def check_choice(name: str, value, choices) -> None:
    """Raise :class:`OptionError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_flags(**flags) -> None:
    """Raise :class:`OptionError` unless every value is True or False."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise OptionError(f"{name} must be true or false, got {value!r}"[:300])


def check_seed(seed) -> None:
    """Raise :class:`OptionError` unless ``seed`` suits ``numpy.random.default_rng`` (an int >= 0)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"seed must be an integer >= 0, got {seed!r}")
