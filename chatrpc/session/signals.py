"""The live-signal events of a session (``typing``, ``mark_read``): from the
protobuf event to the hub, which checks, stores and relays them. An event that
names nothing is refused here too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import invalid
from ..hub import Hub
from ..subscriber import Session
from ..v1 import chat_pb2 as pb


def _target(event: pb.Typing | pb.MarkRead) -> dict[str, str]:
    """The conversation an event names, as keyword arguments (none if it names none)."""
    which = event.WhichOneof("target")
    if which == "room":
        return {"room": event.room}
    if which == "to_user":
        return {"to_user": event.to_user}
    return {}


async def typing(hub: Hub, session: Session, event: pb.Typing) -> None:
    await hub.typing.notice(session, **_target(event))


async def mark_read(hub: Hub, session: Session, event: pb.MarkRead) -> None:
    await hub.reads.mark(session, event.seq, **_target(event))


#: The handler of each live-signal event, by its name in ``ClientEvent``.
SIGNALS: dict[str, Callable[[Hub, Session, Any], Awaitable[None]]] = {
    "typing": typing,
    "mark_read": mark_read,
}


async def handle(hub: Hub, session: Session, event: pb.ClientEvent) -> None:
    """Handles a live-signal event; raises ChatError for one that is none (empty)."""
    kind = event.WhichOneof("event") or ""
    handler = SIGNALS.get(kind)
    if handler is None:
        raise invalid("empty event: set join, leave or send")
    await handler(hub, session, getattr(event, kind))
