"""The client events stored as items of their conversation: sends, and the
changes of a stored message (edit, delete, react). A session commits those that
queued up together in one go, in order; each becomes a draft the hub checked
(a change, or a reply, once what came before it is committed)."""

from __future__ import annotations

import logging

from ..drafts import Change
from ..errors import INTERNAL_MESSAGE, ChatError, Code
from ..hub import Hub
from ..model import DELETE, EDIT, REACTION, Draft, seq_field
from ..subscriber import Notice, Session
from ..v1 import chat_pb2 as pb

log = logging.getLogger(__name__)

#: The change events, with the kind each is stored as.
CHANGES = {"edit": EDIT, "delete": DELETE, "react": REACTION}
#: The events committed together (see SessionRunner._process and :func:`commit_group`).
STORED = frozenset({"send", *CHANGES})


def stored_event(event: pb.ClientEvent) -> pb.Send | pb.Edit | pb.Delete | pb.React:
    """The send or change an event of :data:`STORED` holds."""
    kind = event.WhichOneof("event")
    if kind == "edit":
        return event.edit
    if kind == "delete":
        return event.delete
    if kind == "react":
        return event.react
    return event.send


def reads_state(event: pb.ClientEvent) -> bool:
    """Whether checking ``event`` reads a stored message (a change, a reply): it
    must then see what the events before it in the same group stored, so those
    are committed first. A run of plain sends still commits together."""
    kind = event.WhichOneof("event")
    return kind in CHANGES or (kind == "send" and event.send.reply_to != 0)


async def prepare(hub: Hub, event: pb.ClientEvent, session: Session) -> Draft:
    """The draft of a send or a change, checked by the hub."""
    kind = event.WhichOneof("event") or "empty"
    body = stored_event(event)
    target = body.WhichOneof("target")
    room = body.room if target == "room" else ""
    to_user = body.to_user if target == "to_user" else ""
    if isinstance(body, pb.Send):
        reply_to = seq_field(body.reply_to, "reply_to")
        return await hub.prepare(
            session,
            body.text,
            room=room,
            to_user=to_user,
            client_msg_id=body.client_msg_id,
            reply_to=reply_to,
        )
    change = Change(
        CHANGES[kind],
        seq_field(body.seq, "seq"),
        room,
        to_user,
        text=body.text if isinstance(body, pb.Edit) else "",
        emoji=body.emoji if isinstance(body, pb.React) else "",
        remove=body.remove if isinstance(body, pb.React) else False,
        client_msg_id=body.client_msg_id,
    )
    return await hub.prepare_change(session, change)


async def commit_group(hub: Hub, sends: list[pb.ClientEvent], session: Session) -> None:
    """Checks and commits a group of :data:`STORED` events that queued up together,
    in order; each refusal is answered with a notice and the group goes on."""
    drafts: list[Draft] = []
    for event in sends:
        cid = stored_event(event).client_msg_id
        if drafts and reads_state(event):
            # It is checked against what the events before it stored.
            await _commit(hub, drafts, session)
            drafts = []
        try:
            drafts.append(await prepare(hub, event, session))
        except ChatError as exc:
            session.push(Notice(exc.code.name, exc.message, cid))
        except Exception:
            # A store failure that is not a ChatError (a Redis error reply, say):
            # this send is answered, the session goes on.
            log.exception("session %d: checking a send failed", session.id)
            session.push(Notice(Code.INTERNAL.name, INTERNAL_MESSAGE, cid))
    await _commit(hub, drafts, session)


async def _commit(hub: Hub, drafts: list[Draft], session: Session) -> None:
    if not drafts:
        return
    try:
        await hub.commit(session, drafts)
    except ChatError as exc:
        for d in drafts:
            session.push(Notice(exc.code.name, exc.message, d.client_msg_id))
    except Exception:
        log.exception("session %d: storing %d messages failed", session.id, len(drafts))
        for d in drafts:
            session.push(Notice(Code.INTERNAL.name, INTERNAL_MESSAGE, d.client_msg_id))
