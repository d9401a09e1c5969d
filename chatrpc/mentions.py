"""Whether a message's text mentions a user (``@name``): one rule for the server's
counts and the clients' highlights.

A mention is ``@`` and the user's name, case-insensitive, standing as a word of
its own: not inside a longer name (``@alice2`` is not ``@alice``), not glued to
what comes before (``bob@alice`` is an address, not a mention). A name may hold
``.`` and ``-``, but a sentence's full stop after one is no part of it
(``thanks @alice.`` mentions alice).
"""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=1024)
def _pattern(user: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![\w@.-])@{re.escape(user)}(?![a-z0-9_]|[.-][a-z0-9_])", re.IGNORECASE | re.ASCII
    )


def mentions(text: str, user: str) -> bool:
    """Whether ``text`` mentions ``user`` (a canonical name) as ``@user``."""
    if not user or "@" not in text:
        return False
    return _pattern(user).search(text) is not None
