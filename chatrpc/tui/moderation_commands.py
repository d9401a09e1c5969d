"""Parsing the moderation and blocking commands of ``chatrpc-client`` (``/kick``...)."""

from __future__ import annotations

import re
from typing import Any

from ..names import canonical

#: The commands of this module: moderation of the current room, and blocking.
MODERATION = frozenset(
    {"topic", "private", "keep", "invite", "kick", "ban", "unban", "mute", "unmute", "op"}
    | {"block", "unblock"}
)
#: Commands that name a user and take a reason after it.
_WITH_REASON = frozenset({"invite", "kick", "mute", "ban"})
#: Commands that name only a user (``unblock`` alone lists the blocked users).
_USER_ONLY = frozenset({"unban", "unmute", "block", "unblock"})
ROLES = ("moderator", "owner", "member")
#: A ban's length: a number of seconds, minutes, hours or days.
_DURATION = re.compile(r"(\d{1,6})([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(word: str) -> int | None:
    """The seconds a duration word (``90``, ``30m``, ``2h``, ``7d``) names, or None."""
    found = _DURATION.fullmatch(word)
    if found is None:
        return None
    return int(found.group(1)) * _UNIT_S[found.group(2)]


def moderation_fields(name: str, rest: str) -> dict[str, Any] | None:
    """The fields of the :class:`~chatrpc.tui.commands.Command` ``name`` with the
    words after it (``target`` the user, ``text`` the topic or reason, ``flag``
    on/off or the role, ``count`` a ban's seconds); None if they do not fit."""
    words = rest.split()
    if name == "topic":
        text = rest.strip()
        return {"text": "" if text == "-" else text, "flag": "set" if text else ""}
    if name in ("private", "keep"):
        if len(words) != 1 or words[0].lower() not in ("on", "off"):
            return None
        return {"flag": words[0].lower()}
    if name == "unblock" and not words:
        return {}
    if not words or not canonical(words[0]):
        return None
    user, tail = canonical(words[0]), rest.strip()[len(words[0]) :].strip()
    if name in _USER_ONLY:
        return None if tail else {"target": user}
    if name == "op":
        role = tail.lower() or "moderator"
        return {"target": user, "flag": role} if role in ROLES else None
    count = 0
    if name == "ban" and tail:
        first, _, after = tail.partition(" ")
        seconds = duration_s(first)
        if seconds is not None:
            count, tail = seconds, after.strip()
    return {"target": user, "text": tail, "count": count}
