"""What a :class:`~chatrpc.tui.view.ChatView` shows: events as they come, problems,
state changes, and the answers of ``/who``, ``/rooms``, ``/history`` and ``/help``."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from ..cli_errors import reconnect_reason, rpc_failure
from ..client import ChatClient, State, Stored
from ..v1 import chat_pb2 as pb
from .commands import CALL_TIMEOUT, HELP
from .formatter import Formatter, conv_of_event, printable
from .signals import LiveSignals, unread_note


def rpc_problem(exc: grpc.aio.AioRpcError, *, tls: bool = False) -> str:
    """A one-line account of a failed call."""
    return rpc_failure(exc, tls=tls)


@dataclass
class PendingLine:
    """A line sent but not echoed yet, shown under the messages until it is.

    Attributes:
        where: ``#room`` or ``@user``.
        text: what was sent.
        why: why it waits: ``queued`` (no connection) or ``rate limit``; empty
            while it is simply on its way.
    """

    where: str
    text: str
    why: str = ""


class ChatOutput:
    """The output side of a :class:`~chatrpc.tui.view.ChatView` (see its docstring)."""

    client: ChatClient
    formatter: Formatter
    emit: Callable[[str], None]
    error: Callable[[str], None]
    interactive: bool
    as_json: bool
    on_change: Callable[[], None]
    room: str | None
    failures: int
    usage_failures: int
    tls: bool
    pending: dict[str, PendingLine]
    _held: dict[str, list[pb.ServerEvent]]
    _announced: set[str]
    _epoch: str
    _rooms_next: tuple[str, str] | None

    # -- output ------------------------------------------------------------------------

    @functools.cached_property
    def signals(self) -> LiveSignals:
        """Who is typing, the user's own typing, and what to mark read."""
        return LiveSignals(lambda: self.client, lambda: self.on_change())

    @property
    def me(self) -> str:
        """The user's own name."""
        return self.formatter.me

    def notice(self, text: str) -> None:
        """An informational line (interactive mode only; scripts get just events)."""
        if self.interactive:
            self.emit(self.formatter.info(text))

    def problem(self, text: str, *, usage: bool = False) -> None:
        """Something the user asked for did not work (``usage``: a name not allowed)."""
        if self.interactive:
            self.emit(self.formatter.warning(text))
        else:
            self.failures += 1
            self.usage_failures += usage
            self.error(text)

    def _emit_json(self, key: str, message: ProtoMessage) -> None:
        data = {key: json_format.MessageToDict(message)}
        self.emit(json.dumps(data, ensure_ascii=False))

    def _show_message(self, m: pb.Message) -> None:
        if self.interactive:
            self.signals.on_message(m, self.me, self.room)
        if self.as_json:
            self._emit_json("message", m)
        else:
            self.emit(self.formatter.message(m))

    def show(self, event: pb.ServerEvent) -> None:
        """Shows one event now."""
        if self.as_json:
            data = json_format.MessageToDict(event)
            self.emit(json.dumps(data, ensure_ascii=False))
            return
        kind = event.WhichOneof("event")
        if self.interactive and kind == "typing":
            self.signals.on_typing(event.typing)  # shown under the input line
        elif self.interactive and kind == "message":
            self.signals.on_message(event.message, self.me, self.room)
        if kind == "joined" and event.joined.WhichOneof("target") == "room":
            j = event.joined
            reset = bool(self._epoch) and j.epoch != self._epoch
            self._epoch = j.epoch
            if j.room in self._announced:
                # Back after a reconnect (the client replays what was missed): say
                # so only if something cannot be replayed.
                if reset:
                    self.problem("the server's history was reset: messages may be missing")
                return
            self._announced.add(j.room)
        elif kind == "left":
            self._announced.discard(event.left.room)
        elif kind == "error" and not self.interactive:
            # Piped, stdout carries the conversation only: problems go to stderr.
            e = event.error
            text = f"{pb.Error.Code.Name(e.code)}: {printable(e.message)}"
            if e.code in (pb.Error.RESOURCE_EXHAUSTED, pb.Error.UNAVAILABLE):
                self.error(text)  # the client asks again by itself: not a failure
            else:
                self.problem(text)
            return
        line = self.formatter.event(event)
        if line is not None:
            self.emit(line)

    def on_event(self, event: pb.ServerEvent) -> None:
        """The client's event callback: shows the event, or holds it during a join."""
        held = self._held.get(conv_of_event(event, self.me))
        if held is not None:
            held.append(event)
        else:
            self.show(event)

    def on_state(self, state: State, detail: str) -> None:
        """The client's state callback: says when the connection drops and comes back."""
        if state is State.RECONNECTING:
            why = reconnect_reason(detail, tls=self.tls)
            if self.interactive:
                self.emit(self.formatter.warning(f"reconnecting... ({why})"))
            else:
                self.error(f"reconnecting ({why})")
        elif state is State.CONNECTED and detail == "reconnected":
            if self.interactive:
                self.emit(self.formatter.info("reconnected"))
            else:
                self.error("reconnected")
        if state is not State.CONNECTED:
            for line in self.pending.values():
                line.why = line.why or "queued"
        self.on_change()

    def on_held(self, send: Stored, delay: float) -> None:
        """The client's callback for a send refused for now: it waits, then goes out."""
        line = self.pending.get(send.client_msg_id)
        if line is not None:
            line.why = "rate limit"
            self.on_change()

    def _release(self, conv: str, context: list[pb.Message], replace_replay: bool) -> None:
        """Shows what a join held back: its acknowledgement, the context, then the rest."""
        held = self._held.pop(conv, [])
        first = next((i for i, e in enumerate(held) if e.WhichOneof("event") == "joined"), -1)
        for event in held[: first + 1]:
            self.show(event)
        last_seq = held[first].joined.last_seq if first >= 0 else 0
        for m in context:
            self._show_message(m)
        for event in held[first + 1 :]:
            # The context stands in for a replay of older messages (after a /leave).
            replayed = event.WhichOneof("event") == "message" and event.message.seq <= last_seq
            if replace_replay and replayed:
                continue
            self.show(event)

    async def who(self, room: str) -> None:
        """Shows who is online in ``room``."""
        if not room:
            self.problem("you are in no room: /who ROOM")
            return
        listed = await self.client.list_members(room, timeout=CALL_TIMEOUT)
        if self.as_json:
            self._emit_json("members", listed)
            return
        who = ", ".join(self.formatter.nick(n) for n in listed.members) or "nobody"
        self.emit(self.formatter.info(f"online in #{listed.room or room}: {who}"))

    async def rooms(self, target: str = "") -> None:
        """Lists a page of rooms with how many are online in each: the most active,
        those whose name starts with ``target``, or (``more``) the next page."""
        prefix, token = target, ""
        if target == "more":
            if self._rooms_next is None:
                self.problem("no more rooms: /rooms lists the first page again")
                return
            prefix, token = self._rooms_next
        listed = await self.client.list_rooms(prefix=prefix, page_token=token, timeout=CALL_TIMEOUT)
        self._rooms_next = (prefix, listed.next_page_token) if listed.next_page_token else None
        if self.as_json:
            self._emit_json("rooms", listed)
            return
        if not listed.rooms:
            self.emit(
                self.formatter.info(f"no rooms named {prefix}..." if prefix else "no rooms yet")
            )
        for r in listed.rooms:
            # What this terminal showed is read, though its mark may still be on its way.
            read = self.signals.read_here("#" + r.name, r.last_seq)
            note = "" if read else unread_note(r.unread, r.mentions)
            kept = ", kept" if r.kept else ""
            self.emit(self.formatter.info(f"#{r.name} ({r.online} online{note}{kept})"))
        if self._rooms_next is not None:
            self.emit(self.formatter.info("more rooms: /rooms more"))

    async def history(self, count: int) -> None:
        """Shows the last ``count`` messages of the current room."""
        if self.room is None:
            self.problem("you are in no room: /join ROOM first")
            return
        page = await self.client.history(
            room=self.room, limit=count, descending=True, timeout=CALL_TIMEOUT
        )
        if self.as_json:
            page.messages.reverse()
            self._emit_json("history", page)
            return
        if not page.messages:
            self.emit(self.formatter.info(f"no messages in #{self.room} yet"))
        for m in reversed(page.messages):
            self._show_message(m)

    def help(self) -> None:
        """Lists the commands."""
        if self.as_json:
            self.emit(json.dumps({"help": HELP}))
            return
        for line in HELP:
            self.emit(self.formatter.info(line))
