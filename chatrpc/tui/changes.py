"""What a view stores: lines sent (pending until their echo), and the commands
that answer or change a stored message of the current room: ``/reply``,
``/edit``, ``s/old/new/``, ``/delete``, ``/react``, ``/unreact``.

``/edit`` and ``/delete`` without a seq, and ``s/old/new/``, name the user's
last message in the current room: the newest one of theirs this client saw
(sent here or in another of their sessions, or shown by ``/history`` or as a
room's context) that is not deleted, its text as last edited. A line still on
its way is waited for first, so ``hello`` then ``s/helo/hello/`` in a script
fixes that very line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ..client import SendError, State, new_client_msg_id
from ..v1 import chat_pb2 as pb
from .commands import Command
from .formatter import printable
from .output import ChatOutput, PendingLine


class ChangeCommands(ChatOutput):
    """Sends, replies, edits, deletes and reactions of a :class:`~chatrpc.tui.view.ChatView`."""

    sends: list[asyncio.Future[pb.Message]]
    #: Per room (``#room``): the user's messages seen, seq -> current text, oldest first.
    _mine: dict[str, dict[int, str]]
    #: Lines sent and not answered yet (their echo tells their seq).
    _inflight: set[asyncio.Future[pb.Message]]

    def _submit(self, text: str, *, room: str = "", to_user: str = "", reply_to: int = 0) -> None:
        """Sends a line; it is pending (shown as such) until its echo comes."""
        cid = new_client_msg_id()
        connected = self.client.status is State.CONNECTED
        line = PendingLine(
            "#" + room if room else "@" + to_user, text, "" if connected else "queued"
        )
        self.pending[cid] = line
        future = self.client.submit(
            text, room=room, to_user=to_user, client_msg_id=cid, reply_to=reply_to
        )
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        future.add_done_callback(lambda f: self._sent(cid, line, f))
        if not self.interactive:
            self.sends.append(future)
        self.on_change()

    def _sent(self, cid: str, line: PendingLine, future: asyncio.Future[pb.Message]) -> None:
        """A line's outcome: echoed (shown as a message), or refused (said once)."""
        self.pending.pop(cid, None)
        self.on_change()
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, SendError):
            e = exc.error
            self.problem(
                f"not sent to {line.where}: {pb.Error.Code.Name(e.code)}: {printable(e.message)}"
            )

    def on_event(self, event: pb.ServerEvent) -> None:
        self.track(event)
        super().on_event(event)

    def _show_message(self, m: pb.Message) -> None:
        # A room's context on joining, and /history: the user's messages there too.
        self.track(m)
        super()._show_message(m)

    def track(self, event: pb.ServerEvent | pb.Message) -> None:
        """Keeps the user's own messages of each room up to date (seq -> text)."""
        m = event if isinstance(event, pb.Message) else event.message
        if isinstance(event, pb.ServerEvent) and event.WhichOneof("event") != "message":
            return
        if m.sender != self.me or m.WhichOneof("target") != "room":
            return
        mine = self._mine.setdefault("#" + m.room, {})
        if m.kind == pb.Message.MESSAGE and not m.deleted:
            mine.setdefault(m.seq, m.text)
            if m.edited:
                mine[m.seq] = m.text
        elif m.kind == pb.Message.EDIT and m.target_seq in mine and m.text:
            mine[m.target_seq] = m.text
        elif m.kind == pb.Message.DELETE:
            mine.pop(m.target_seq, None)

    async def change(self, cmd: Command) -> None:
        """Runs ``/reply``, ``/edit``, ``s///``, ``/delete`` or ``/react`` in the current room."""
        room = self.room
        if room is None:
            self.problem("you are in no room: /join ROOM first")
            return
        if cmd.name == "reply":
            self._submit(cmd.text, room=room, reply_to=cmd.seq)
            return
        seq, text = cmd.seq, cmd.text
        if not seq:
            last = await self._last(room)
            if last is None:
                self.problem(f"you have no message in #{room} to change: name one by its seq")
                return
            seq, current = last
            if cmd.name == "subst":
                if cmd.old not in current:
                    self.problem(f"{printable(cmd.old)!r} is not in your message #{seq}")
                    return
                text = current.replace(cmd.old, cmd.text, 1)
        work: Awaitable[pb.Message]
        if cmd.name in ("edit", "subst"):
            work = self.client.edit(seq, text, room=room)
        elif cmd.name == "delete":
            work = self.client.delete(seq, room=room)
        else:
            work = self.client.react(seq, cmd.emoji, remove=cmd.remove, room=room)
        future = asyncio.ensure_future(work)
        self._inflight.add(future)  # an s/// after an edit works on the edited text
        future.add_done_callback(self._inflight.discard)
        future.add_done_callback(lambda f: self._changed(room, seq, f))
        if not self.interactive:
            self.sends.append(future)

    async def _last(self, room: str) -> tuple[int, str] | None:
        """The user's last message in ``room`` (seq, text), once the lines on their
        way are answered; None if there is none."""
        if self._inflight:
            for result in await asyncio.gather(*self._inflight, return_exceptions=True):
                if isinstance(result, pb.Message):
                    self.track(result)
        mine = self._mine.get("#" + room, {})
        if not mine:
            return None
        seq = max(mine)
        return seq, mine[seq]

    def _changed(self, room: str, seq: int, future: asyncio.Future[pb.Message]) -> None:
        """A change's outcome: its echo is shown as it comes; a refusal is said once."""
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, SendError):
            e = exc.error
            code = pb.Error.Code.Name(e.code)
            self.problem(f"#{seq} in #{room} not changed: {code}: {printable(e.message)}")
