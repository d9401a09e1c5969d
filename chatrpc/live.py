"""Live-only items a session receives besides stored messages: who came online
or left, who is typing, and how far a user has read. Never stored, never replayed.

Each object goes to every session it is meant for and is encoded once for all of
them (``wire``, ``json``), like a presence change. In a direct conversation the
event names the conversation by the recipient's peer (``with_user``), so the
user's own sessions and the peer's get an object each.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Presence:
    """A user came online in a room or left it; one object goes to every session."""

    room: str
    user: str
    joined: bool
    #: The encoded wire event, filled once by the server for all sessions.
    wire: bytes | None = field(default=None, repr=False, compare=False)
    #: The same event as proto3 JSON, filled once for all WebSocket sessions.
    json: str | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class TypingNotice:
    """``user`` is typing in ``room``, or in their DM with the recipient (``with_user``)."""

    user: str
    room: str = ""
    with_user: str = ""
    #: The encoded wire event and its proto3 JSON, filled once for all sessions.
    wire: bytes | None = field(default=None, repr=False, compare=False)
    json: str | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class ReadMark:
    """``user`` has read ``room`` (or the DM with ``with_user``) up to ``seq``."""

    user: str
    seq: int
    room: str = ""
    with_user: str = ""
    wire: bytes | None = field(default=None, repr=False, compare=False)
    json: str | None = field(default=None, repr=False, compare=False)


#: A live-only item; :meth:`chatrpc.subscriber.Session.offer` drops these first.
LiveItem = TypingNotice | ReadMark
