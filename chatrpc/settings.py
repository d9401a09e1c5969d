"""Every server setting declared once: its default, its flag, its help, its bounds.

A setting is a dataclass field made by :func:`setting`. The command-line parser
is built from those fields (``chatrpc-server --help`` and the README's options
tables show the same defaults: a test compares them), and every construction
path checks the bounds in ``__post_init__`` through :func:`check`, so a value
out of bounds is an error, never silently clamped.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A setting out of its bounds; the message names the flag and the bounds."""


@dataclass(frozen=True, slots=True)
class Option:
    """How a setting appears on the command line."""

    flag: str
    help: str
    #: Smallest and largest values allowed (None: unbounded on that side).
    low: float | None = None
    high: float | None = None
    metavar: str | None = None
    #: The values allowed (a text setting with a few choices).
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> None:
        """Raises :class:`ConfigError` if ``value`` is out of bounds."""
        if self.choices and value not in self.choices:
            raise ConfigError(
                f"{self.flag} must be one of {', '.join(self.choices)}, not {value!r}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        if not math.isfinite(value):
            raise ConfigError(f"{self.flag} must be a finite number, not {value}")
        if self.low is not None and value < self.low:
            raise ConfigError(f"{self.flag} must be at least {_show(self.low)}, not {value}")
        if self.high is not None and value > self.high:
            raise ConfigError(f"{self.flag} must be at most {_show(self.high)}, not {value}")


def _show(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def setting(
    default: Any,
    flag: str,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring)."""
    option = Option(flag, help, low, high, metavar, choices)
    option.check(default)
    return field(default=default, metadata={"option": option})


def options(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Option]]:
    """The fields of a settings dataclass that are command-line options, in order."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]


def check(obj: Any) -> None:
    """Checks every setting of ``obj`` against its bounds (call from ``__post_init__``)."""
    for f, option in options(type(obj)):
        option.check(getattr(obj, f.name))
