"""User and room names: one normalisation for the server, the client and the terminal UI.

The server refuses a name that is not canonical (:func:`normalize_name`); a
client folds what a person typed the same way (:func:`canonical`) so that what it
asked for and what the server answers name the same room.
"""

from __future__ import annotations

import re
import sys
import unicodedata

from .errors import invalid

NAME_MAX = 32
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
#: Unicode categories never allowed anywhere in a name, even where NFKC and
#: stripping would remove them: control (Cc), format (Cf: bidi overrides,
#: zero-width characters), surrogates, private use, unassigned, line separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def normalize_name(raw: str, what: str) -> str:
    """Returns the canonical form of a user or room name, or raises INVALID_ARGUMENT.

    Names are NFKC-normalised and lower-cased, then must be 1-32 characters of
    ASCII letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit.
    ASCII only means no lookalike characters: ``\u0430lice`` (a Cyrillic a) is refused,
    and ``Alice`` and ``alice`` are the same name. Control characters, bidi
    controls and zero-width characters are refused wherever they are, so a name
    never displays differently from what it is.
    """
    if len(raw) > 8 * NAME_MAX:
        raise invalid(f"{what} name is longer than {NAME_MAX} characters")
    if any(unicodedata.category(c) in _HIDDEN for c in raw):
        raise invalid(f"{what} name {raw!r} holds control or invisible characters")
    name = _fold(raw)
    if what == "room" and name.startswith("#"):
        name = name[1:]
    if not name:
        raise invalid(f"{what} name is empty")
    if len(name) > NAME_MAX:
        raise invalid(f"{what} name is longer than {NAME_MAX} characters")
    if not _NAME_RE.fullmatch(name):
        raise invalid(
            f"{what} name {raw!r} is not allowed: use letters a-z, digits, '_', '.', '-',"
            " starting with a letter or digit"
        )
    # One copy of each name in use however many sessions hold it (their rooms).
    return sys.intern(name)


def _fold(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip().lower()


def canonical(name: str) -> str:
    """A room or user name as the server stores it, for a valid name: NFKC, lower
    case, no ``#`` or ``@`` in front (``"#Lobby "`` is ``lobby``). An invalid name
    comes out folded the same way, for the server to refuse."""
    name = _fold(name)
    return name[1:] if name[:1] in ("#", "@") else name
