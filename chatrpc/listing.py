"""Paged listings: page sizes and the opaque page tokens of ListRooms and co.

A page token is the sort key of the last item of the previous page, tagged with
the listing it belongs to and base64-encoded, so the next page starts right after
that item wherever it now is: a listing never repeats a page or loops, even
while the items move (a room that becomes active jumps to the front).
"""

from __future__ import annotations

import base64
import binascii

from .errors import invalid


def page_size(asked: int, default: int, maximum: int) -> int:
    """The page size to use: ``default`` for 0, at most ``maximum``."""
    return min(default if asked <= 0 else asked, maximum)


def encode_token(kind: str, *parts: str | int) -> str:
    """An opaque token for listing ``kind`` holding ``parts`` (no ``|`` in them)."""
    raw = "|".join([kind, *(str(p) for p in parts)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, kind: str, count: int) -> list[str]:
    """The ``count`` parts of a token made by :func:`encode_token` for ``kind``.

    Raises INVALID_ARGUMENT for anything else (another listing's token, garbage).
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    parts = raw.split("|")
    if len(token) > 200 or parts[0] != kind or len(parts) != count + 1:
        raise invalid("page_token is not one this listing gave: start again without it")
    return parts[1:]


def duration(seconds: float) -> str:
    """A wait in words a user reads at a glance: ``"3 h 12 min"``, ``"40 s"``."""
    s = max(1, int(seconds + 0.999))
    if s < 60:
        return f"{s} s"
    minutes = (s + 59) // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
