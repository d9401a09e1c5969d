"""What a session's stored events (sends, edits, deletes, reactions) become:
checked drafts for the store, or the error that refuses them.

The hub asks :class:`Drafts` for a draft of each such event before it commits
them together. A send's rules (budget, text, id) are chatrpc.rules'; a change's
and a reply's are chatrpc.change_rules'.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import change_rules
from .errors import ChatError, Code, invalid
from .model import (
    DELETE,
    EDIT,
    REACTION,
    Draft,
    StoredMessage,
    dm_key,
    normalize_name,
    room_key,
    seq_field,
)
from .rules import SendRules
from .store import Store
from .subscriber import Session


@dataclass(frozen=True, slots=True)
class Change:
    """An edit, delete or reaction as a client asked for it.

    ``kind`` is EDIT, DELETE or REACTION; ``seq`` the message it changes; a room
    or a DM peer names the conversation.
    """

    kind: int
    seq: int
    room: str = ""
    to_user: str = ""
    text: str = ""
    emoji: str = ""
    remove: bool = False
    client_msg_id: str = ""


class Drafts:
    """The checks of one server's sends and changes over its store."""

    def __init__(
        self, store: Store, rules: SendRules, muted: Callable[[str, str], bool] | None = None
    ) -> None:
        self._store = store
        self._rules = rules
        #: Whether a user is muted in a room (room, user); see chatrpc.room_guard.
        self._muted = muted or (lambda room, user: False)

    async def send(
        self,
        session: Session,
        text: str,
        *,
        room: str = "",
        to_user: str = "",
        client_msg_id: str = "",
        reply_to: int = 0,
    ) -> Draft:
        """Checks a send and returns what to store; raises ChatError if it is refused.

        Every send, valid or not, costs one token of the user's budget
        (``rate_limit``, ``rate_burst``). ``reply_to`` (0: none) must name a
        message of the same conversation (see chatrpc.change_rules).
        """
        self._rules.spend(session.user, 1.0)
        text = self._rules.text(text)
        client_msg_id = self._rules.client_msg_id(client_msg_id)
        conv, room, peer, where = await self._conversation(session, room, to_user, "send")
        if reply_to:
            try:
                await change_rules.message(self._store, conv, reply_to, where, "reply_to")
            except ChatError as exc:
                raise invalid(f"reply_to: {exc.message}") from None
        now_ms = int(time.time() * 1000)
        return Draft(
            conv,
            session.user,
            text,
            now_ms,
            client_msg_id,
            room=room,
            to_user=peer,
            reply_to=reply_to,
        )

    async def change(self, session: Session, change: Change) -> Draft:
        """Checks an edit, delete or reaction and returns what to store; raises
        ChatError if it is refused (see chatrpc.change_rules).

        A change costs what a send costs from the user's budget.
        """
        kind, text, emoji = change.kind, change.text, change.emoji
        self._rules.spend(session.user, 1.0)
        if kind == EDIT:
            text = self._rules.text(text)
        if kind == REACTION:
            emoji = change_rules.emoji(emoji)
        client_msg_id = self._rules.client_msg_id(change.client_msg_id)
        what = change_rules.EVENTS[kind]
        conv, room, peer, where = await self._conversation(
            session, change.room, change.to_user, what
        )
        seq_field(change.seq, "seq")
        remove = change.remove and kind == REACTION
        try:
            target = await change_rules.message(self._store, conv, change.seq, where, "seq")
            moderator = await self._moderates(room, session.user, target, kind)
            change_rules.check_change(
                session.user, target, kind, where, emoji=emoji, remove=remove, moderator=moderator
            )
        except ChatError:
            # A retry whose original changed the message since (or that retention
            # dropped) is answered by the store with that original.
            if not client_msg_id or not await self._store.find_sent(session.user, client_msg_id):
                raise
        return Draft(
            conv,
            session.user,
            text if kind == EDIT else "",
            int(time.time() * 1000),
            client_msg_id,
            room=room,
            to_user=peer,
            kind=kind,
            target_seq=change.seq,
            emoji=emoji,
            remove=remove,
        )

    async def _moderates(self, room: str, user: str, target: StoredMessage, kind: int) -> bool:
        """Whether ``user`` deletes someone else's message of ``room`` as one who
        moderates its author there."""
        if kind != DELETE or not room or target.sender == user:
            return False
        mine = await self._store.room_role(room, user)
        return change_rules.moderates(mine, await self._store.room_role(room, target.sender))

    async def _conversation(
        self, session: Session, room: str, to_user: str, what: str
    ) -> tuple[str, str, str, str]:
        """The conversation a ``what`` event (send, edit...) names: its key, room,
        DM peer, and how an error message names it; raises ChatError if the
        session may not write to it."""
        if room:
            room = normalize_name(room, "room")
            if room not in session.rooms:
                doing = "sending to it" if what == "send" else "changing its messages"
                raise ChatError(Code.FAILED_PRECONDITION, f"join #{room} before {doing}")
            if self._muted(room, session.user):
                raise ChatError(Code.PERMISSION_DENIED, f"you are muted in #{room}")
            return room_key(room), room, "", f"#{room}"
        if to_user:
            peer = normalize_name(to_user, "user")
            if await self._store.get_account(peer) is None:
                raise ChatError(Code.NOT_FOUND, f"no user named {peer!r}")
            if peer != session.user and await self._store.has_blocked(peer, session.user):
                raise ChatError(Code.PERMISSION_DENIED, f"{peer} does not take your messages")
            return dm_key(session.user, peer), "", peer, f"your conversation with {peer}"
        raise invalid(f"{what} needs a room or a to_user")
