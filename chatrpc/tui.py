"""The terminal face of ``chatrpc-client``: commands, how events look, the prompt.

* :func:`parse_line` turns a typed line into a :class:`Command`: plain text for
  the current room, or ``/join``, ``/leave``, ``/switch``, ``/msg``, ``/me``,
  ``/who``, ``/rooms``, ``/history``, ``/help``, ``/quit`` as IRC users expect.
* :class:`Formatter` turns a server event into one line:
  ``[HH:MM] #room <nick> text``, ``[HH:MM] #room * nick waves`` for ``/me``,
  ``[HH:MM] [dm] <alice -> bob> text`` for a direct message (``@peer <nick>`` in
  piped mode, which scripts already read), ``-- ...`` for everything else. With
  colors on, each nick has a stable color and presence lines are dimmed.
* :class:`Conversation` runs commands against a :class:`~chatrpc.client.ChatClient`
  and decides what is shown; piped mode and the interactive prompt share it.
* :func:`interact` is the prompt: prompt_toolkit in the same asyncio loop as the
  client, so incoming lines print above the input line and never clobber what
  is being typed.

``/me waves`` is sent as the text ``/me waves``, readable as it is in grpcurl
and any other client, and shown as ``* alice waves``. A line starting with
``//`` is sent with one ``/`` less, for text that must start with a slash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.styles import Style

from .cli_errors import reconnect_reason, rpc_failure
from .client import ChatClient, ClientClosed, SendError, State, new_client_msg_id
from .names import canonical
from .v1 import chat_pb2 as pb

#: A message whose text starts with this is an action: ``* nick rest``.
ACTION = "/me "

#: Messages shown by ``/history`` without a count.
HISTORY_DEFAULT = 20
#: The most ``/history`` asks for (the server's largest History page).
HISTORY_MAX = 1000
#: Messages of a room shown on joining it, in interactive mode.
CONTEXT_DEFAULT = 10
#: How long a one-off call (``/who``, ``/rooms``, ``/history``) may take.
CALL_TIMEOUT = 10.0

# -- commands ----------------------------------------------------------------------------

#: name -> (usage, what it does), in the order ``/help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "join": ("/join ROOM", "join ROOM and talk there"),
    "leave": ("/leave [ROOM]", "leave ROOM (default: the current room)"),
    "switch": ("/switch ROOM", "talk in ROOM, one you have joined"),
    "msg": ("/msg USER TEXT", "send a direct message to USER"),
    "me": ("/me TEXT", "say what you are doing: * you TEXT"),
    "who": ("/who [ROOM]", "who is online in ROOM (default: the current room)"),
    "rooms": ("/rooms [PREFIX]", "the most active rooms, or those named PREFIX...; /rooms more"),
    "history": ("/history [N]", f"the last N messages of this room (default {HISTORY_DEFAULT})"),
    "password": ("/password", "set or change your password (asked for, not shown)"),
    "help": ("/help", "this list"),
    "quit": ("/quit", "leave (Ctrl-D and Ctrl-C too)"),
}

#: IRC names for the same commands.
ALIASES = {"part": "leave", "names": "who", "list": "rooms", "exit": "quit", "query": "msg"}

HELP = [
    *(f"{usage:<16} {what}" for usage, what in COMMANDS.values()),
    "Any other line goes to the current room; start it with // to send a leading /.",
]


class CommandError(ValueError):
    """A line that is not a valid command; the message is a one-line hint."""


@dataclass(frozen=True)
class Command:
    """One parsed input line.

    Attributes:
        name: ``say`` for plain text, else a key of :data:`COMMANDS`.
        target: the room (without ``#``) or user the command names, if any.
        text: the text to send (``say``, ``msg``, ``me``).
        count: how many messages (``history``).
    """

    name: str
    target: str = ""
    text: str = ""
    count: int = 0


def parse_line(line: str) -> Command | None:
    """Parses one input line; returns ``None`` for a blank line.

    Raises:
        CommandError: an unknown command or wrong arguments, with a hint.
    """
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if not text.startswith("/"):
        return Command("say", text=text)
    if text.startswith("//"):
        return Command("say", text=text[1:])
    head, *more = text[1:].split(None, 1)
    rest = more[0] if more else ""
    name = ALIASES.get(head.lower(), head.lower())
    if name not in COMMANDS:
        raise CommandError(f"unknown command /{head}: /help lists the commands")
    usage = f"usage: {COMMANDS[name][0]}"
    words = rest.split()
    if name in ("join", "switch"):
        if len(words) != 1 or not canonical(words[0]):
            raise CommandError(usage)
        return Command(name, target=canonical(words[0]))
    if name in ("leave", "who"):
        if len(words) > 1:
            raise CommandError(usage)
        return Command(name, target=canonical(words[0]) if words else "")
    if name == "msg":
        peer, _, body = rest.partition(" ")
        body = body.lstrip()
        if not canonical(peer) or not body.strip():
            raise CommandError(usage)
        return Command("msg", target=canonical(peer), text=body)
    if name == "me":
        if not rest.strip():
            raise CommandError(usage)
        return Command("me", text=rest)
    if name == "history":
        if not words:
            return Command("history", count=HISTORY_DEFAULT)
        if len(words) == 1 and words[0].isdigit() and 1 <= int(words[0]) <= HISTORY_MAX:
            return Command("history", count=int(words[0]))
        raise CommandError(f"{usage} (N from 1 to {HISTORY_MAX})")
    if name == "rooms":
        if len(words) > 1 or (words and words[0] != "more" and not canonical(words[0])):
            raise CommandError(usage)
        return Command("rooms", target=canonical(words[0]) if words else "")
    return Command(name)  # help, quit: arguments are ignored


# -- how things look ----------------------------------------------------------------------

#: Nick colors: ANSI SGR codes and the prompt_toolkit names of the same colors.
PALETTE: tuple[tuple[str, str], ...] = (
    ("31", "ansired"),
    ("32", "ansigreen"),
    ("33", "ansiyellow"),
    ("34", "ansiblue"),
    ("35", "ansimagenta"),
    ("36", "ansicyan"),
    ("91", "ansibrightred"),
    ("92", "ansibrightgreen"),
    ("93", "ansibrightyellow"),
    ("94", "ansibrightblue"),
    ("95", "ansibrightmagenta"),
    ("96", "ansibrightcyan"),
)

# C0/C1 controls (ESC above all) and bidi overrides would let a sender move the
# cursor, recolor or rewrite the reader's screen; they are shown escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters made visible (``^[``, ``\\u202e``)."""

    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        if ch < " ":
            return "^" + chr(ord(ch) + 64)
        return f"\\u{ord(ch):04x}"

    return _UNSAFE.sub(escape, text)


def nick_color(nick: str) -> int:
    """The index in :data:`PALETTE` of a nick's color: the same in every run."""
    return zlib.crc32(nick.encode()) % len(PALETTE)


def colors_wanted(stream: TextIO) -> bool:
    """Colors only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Formatter:
    """Turns server events into lines of text.

    Args:
        me: the user's own (normalised) name.
        color: add ANSI colors.
        dm_arrows: show DMs as ``[dm] <alice -> bob>`` (interactive); without it
            as ``@peer <sender>`` (piped mode, as scripts read it).
    """

    def __init__(self, me: str, *, color: bool = False, dm_arrows: bool = True) -> None:
        self.me = me
        self.color = color
        self.dm_arrows = dm_arrows

    def _sgr(self, codes: str, text: str) -> str:
        return f"\x1b[{codes}m{text}\x1b[0m" if self.color else text

    def nick(self, nick: str) -> str:
        """A nick in its own color (bold for the user's own)."""
        code = PALETTE[nick_color(nick)][0]
        return self._sgr(f"1;{code}" if nick == self.me else code, nick)

    def message(self, m: pb.Message) -> str:
        """``[HH:MM] #room <nick> text``, ``* nick action``, DMs marked as such."""
        stamp = self._sgr("2", time.strftime("[%H:%M]", time.localtime(m.sent_at.seconds)))
        text = printable(m.text)
        action = text.startswith(ACTION)
        body = f"* {self.nick(m.sender)} {text[len(ACTION) :]}" if action else text
        if m.WhichOneof("target") == "room":
            where = f"#{m.room}"
            return f"{stamp} {where} {body if action else f'<{self.nick(m.sender)}> {body}'}"
        peer = m.to_user if m.sender == self.me else m.sender
        if not self.dm_arrows:
            return f"{stamp} @{peer} {body if action else f'<{self.nick(m.sender)}> {body}'}"
        mark = self._sgr("1;35", "[dm]")
        if action:
            return f"{stamp} {mark} {body} (to {self.nick(m.to_user)})"
        return f"{stamp} {mark} <{self.nick(m.sender)} -> {self.nick(m.to_user)}> {body}"

    def info(self, text: str) -> str:
        """A dimmed ``-- text`` line: presence, joins, command output."""
        return self._sgr("2", f"-- {text}")

    def warning(self, text: str) -> str:
        """A ``-- text`` line that needs attention (errors)."""
        return self._sgr("31", f"-- {text}")

    def event(self, event: pb.ServerEvent) -> str | None:
        """One line for an event, or ``None`` for an event not worth a line."""
        kind = event.WhichOneof("event")
        if kind == "message":
            return self.message(event.message)
        if kind == "presence":
            p = event.presence
            verb = "joined" if p.kind == pb.Presence.JOINED else "left"
            return self.info(f"{p.user} {verb} #{p.room}")
        if kind == "joined":
            j = event.joined
            if j.WhichOneof("target") != "room":
                return None
            if j.members or not j.online:
                return self.info(f"you joined #{j.room} (online: {', '.join(j.members)})")
            # A big room: the server gives the number, /who the names.
            return self.info(f"you joined #{j.room} ({j.online} online; /who lists them)")
        if kind == "left":
            return self.info(f"you left #{event.left.room}")
        if kind == "error":
            e = event.error
            return self.warning(f"error: {pb.Error.Code.Name(e.code)}: {printable(e.message)}")
        return None


def _conv_of_event(event: pb.ServerEvent, me: str) -> str:
    """The conversation key (``#room``/``@peer``) an event belongs to, or ``""``."""
    kind = event.WhichOneof("event")
    if kind == "message":
        m = event.message
        if m.WhichOneof("target") == "room":
            return "#" + m.room
        return "@" + (m.to_user if m.sender == me else m.sender)
    if kind == "joined" and event.joined.WhichOneof("target") == "room":
        return "#" + event.joined.room
    if kind == "presence":
        return "#" + event.presence.room
    return ""


# -- running commands ---------------------------------------------------------------------


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


#: How long ``/who``, ``/rooms`` and ``/history`` wait for a lost connection: past
#: the client's longest reconnect backoff (10 s, +50% jitter).
RECONNECT_WAIT = 30.0


class Conversation:
    """Runs commands against a client and shows what happens, in one of two modes.

    Interactive: problems and state changes are ``-- ...`` lines among the
    messages. Piped: they go to stderr as ``chatrpc-client: ...`` and are
    counted in :attr:`failures`; sends are not awaited one by one, and
    :meth:`finish` waits for every echo.

    Args:
        client: the session; its ``on_event`` and ``on_state`` are set to this object's.
        formatter: how events look.
        emit: writes one line of output.
        error: writes one line to stderr (piped mode).
        interactive: the mode (see above).
        as_json: emit events and command results as one JSON object per line.
        on_change: called when the prompt should be redrawn (room or state changed).
        context: how many of a room's last messages ``/join`` shows.
    """

    def __init__(
        self,
        client: ChatClient,
        formatter: Formatter,
        *,
        emit: Callable[[str], None],
        error: Callable[[str], None],
        interactive: bool,
        as_json: bool = False,
        on_change: Callable[[], None] | None = None,
        context: int = 0,
    ) -> None:
        self.client = client
        self.formatter = formatter
        self.emit = emit
        self.error = error
        self.interactive = interactive
        self.as_json = as_json
        self.on_change = on_change or (lambda: None)
        self.context = context
        #: Where a plain line goes (a room name without ``#``), if anywhere.
        self.room: str | None = None
        #: Where ``/rooms more`` goes on: (prefix, page token) of the next page.
        self._rooms_next: tuple[str, str] | None = None
        self.failures = 0
        self.sends: list[asyncio.Future[pb.Message]] = []
        # Events of a room being joined are held back until its context is shown.
        self._held: dict[str, list[pb.ServerEvent]] = {}
        # Rooms whose "you joined" line was shown: a rejoin after a reconnect is quiet.
        self._announced: set[str] = set()
        # The server's history epoch: a new one means its history was reset.
        self._epoch = ""
        #: Lines sent and not echoed yet, by client_msg_id, in the order sent.
        self.pending: dict[str, PendingLine] = {}
        #: The room a /join is under way for (the prompt shows it).
        self.joining: str | None = None
        #: Commands typed and not run yet: they wait behind one that waits (a
        #: /join while the connection is away); the prompt lists them.
        self.waiting: list[Command] = []
        #: Refusals of a name the server does not allow (piped: exit code 2).
        self.usage_failures = 0
        #: Whether the client uses TLS (for what a failed connection means).
        self.tls = client.security is not None
        self.client = client
        self.attach(client)

    def attach(self, client: ChatClient) -> None:
        """Shows what ``client`` receives (also a new client after logging in again)."""
        self.client = client
        client.on_event = self.on_event
        client.on_state = self.on_state
        client.on_held = self.on_held

    # -- output ------------------------------------------------------------------------

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
        held = self._held.get(_conv_of_event(event, self.me))
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

    def on_held(self, send: pb.Send, delay: float) -> None:
        """The client's callback for a send refused for now: it waits, then goes out."""
        line = self.pending.get(send.client_msg_id)
        if line is not None:
            line.why = "rate limit"
            self.on_change()

    # -- commands ----------------------------------------------------------------------

    async def execute(self, cmd: Command) -> bool:
        """Runs one command; returns ``False`` when it asks to quit.

        Raises:
            ClientClosed: the client stopped for good.
        """
        try:
            return await self._execute(cmd)
        except grpc.aio.AioRpcError as exc:
            self.problem(f"/{cmd.name} failed: {rpc_problem(exc, tls=self.tls)}")
        except TimeoutError:
            self.problem(f"/{cmd.name} failed: no answer from the server")
        return True

    async def _execute(self, cmd: Command) -> bool:
        name = cmd.name
        if name == "quit":
            return False
        if name in ("who", "rooms", "history"):
            if self.sends:
                # Piped: what a script asks about reflects the lines it sent before.
                await asyncio.gather(*self.sends, return_exceptions=True)
            if not await self._online(name):
                return True
        if name == "say":
            self.say(cmd.text)
        elif name == "me":
            self.say(ACTION + cmd.text)
        elif name == "msg":
            self._submit(cmd.text, to_user=cmd.target)
        elif name == "password":
            self.problem("/password works at the prompt; a script uses --new-password-env VAR")
        elif name == "join":
            await self.join(cmd.target, self.context)
        elif name == "leave":
            await self.leave(cmd.target or self.room or "")
        elif name == "switch":
            self.switch(cmd.target)
        elif name == "who":
            await self.who(cmd.target or self.room or "")
        elif name == "rooms":
            await self.rooms(cmd.target)
        elif name == "history":
            await self.history(cmd.count)
        elif name == "help":
            self.help()
        return True

    async def _online(self, name: str) -> bool:
        """Waits (a while) for the connection a call needs; says so once if it stays away."""
        if self.client.status is State.CONNECTED:
            return True
        self.notice(f"/{name} waits for the connection to come back")
        try:
            await asyncio.wait_for(self.client.wait_connected(), RECONNECT_WAIT)
        except TimeoutError:
            self.problem(f"/{name}: the server is unreachable (still reconnecting); try later")
            return False
        return True

    def say(self, text: str) -> None:
        """Sends ``text`` to the current room."""
        if self.room is None:
            self.problem("you are in no room: /join ROOM first")
            return
        self._submit(text, room=self.room)

    def _submit(self, text: str, *, room: str = "", to_user: str = "") -> None:
        """Sends a line; it is pending (shown as such) until its echo comes."""
        cid = new_client_msg_id()
        connected = self.client.status is State.CONNECTED
        line = PendingLine(
            "#" + room if room else "@" + to_user, text, "" if connected else "queued"
        )
        self.pending[cid] = line
        future = self.client.submit(text, room=room, to_user=to_user, client_msg_id=cid)
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

    async def join(self, room: str, context: int = 0, *, refusal: bool = False) -> None:
        """Joins ``room`` (or switches to it if already joined) and makes it current.

        With ``context``, the last ``context`` messages of the room are shown
        right after the "you joined" line, before anything newer.

        Raises:
            SendError: the server refused the join and ``refusal`` is set
                (otherwise the refusal is reported like any problem).
        """
        if room in self.client.state.rooms:
            self.switch(room)
            return
        conv = "#" + room
        self._held[conv] = []
        context_messages: list[pb.Message] = []
        self.joining = room
        self.on_change()
        try:
            joined = await self.client.join(room)
            if context > 0 and joined.last_seq > 0:
                page = await self.client.history(
                    room=room,
                    before_seq=joined.last_seq + 1,
                    limit=context,
                    descending=True,
                    timeout=CALL_TIMEOUT,
                )
                context_messages = list(reversed(page.messages))
        except SendError as exc:
            if refusal:
                raise
            usage = exc.error.code == pb.Error.INVALID_ARGUMENT
            self.problem(f"cannot join #{room}: {printable(exc.error.message)}", usage=usage)
            return
        except grpc.aio.AioRpcError as exc:
            self.problem(f"no history for #{room}: {rpc_problem(exc, tls=self.tls)}")
        finally:
            self.joining = None
            self._release(conv, context_messages, context > 0)
        self.room = room
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

    async def leave(self, room: str) -> None:
        """Leaves ``room``; the current room becomes the last one still joined."""
        if not room:
            self.problem("you are in no room")
            return
        if room not in self.client.state.rooms:
            self.problem(f"you are not in #{room}")
            return
        await self.client.leave(room)
        if self.room == room:
            self.room = self.client.state.rooms[-1] if self.client.state.rooms else None
            if self.room is not None:
                self.notice(f"now talking in #{self.room}")
            self.on_change()

    def switch(self, room: str) -> None:
        """Makes ``room``, one already joined, the current room."""
        if room not in self.client.state.rooms:
            self.problem(f"you are not in #{room}: /join {room} first")
            return
        self.room = room
        self.notice(f"now talking in #{room}")
        self.on_change()

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
            self.emit(self.formatter.info(f"#{r.name} ({r.online} online)"))
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

    async def finish(self) -> None:
        """Waits for the echo of every send (piped mode); a refusal is a failure.

        Raises:
            ClientClosed: the client stopped for good before every echo came.
        """
        results = await asyncio.gather(*self.sends, return_exceptions=True)
        self.sends.clear()
        for result in results:
            # A refusal was said when it came (see _sent).
            if isinstance(result, BaseException) and not isinstance(result, SendError):
                raise result


# -- the interactive prompt ---------------------------------------------------------------


def _describe(cmd: Command, room: str | None) -> str:
    """A command waiting to run, as the user would read it (a line: where it goes)."""
    where = f"#{room}" if room else "(no room)"
    if cmd.name == "say":
        return f"{where} {cmd.text}"
    if cmd.name == "me":
        return f"{where} * {cmd.text}"
    if cmd.name == "msg":
        return f"@{cmd.target} {cmd.text}"
    return f"/{cmd.name} {cmd.target or (cmd.count or '')}".rstrip()


class Prompt:
    """The input line: ``alice #general> ``, with input history.

    Args:
        conversation: what lines are handed to.
        color: color the nick as in messages.
    """

    def __init__(self, conversation: Conversation, *, color: bool) -> None:
        self.conversation = conversation
        self.color = color
        self.session: PromptSession[str] = PromptSession(
            history=InMemoryHistory(),
            color_depth=None if color else ColorDepth.DEPTH_1_BIT,
            # Lines that wait are listed under the input line, which prompt_toolkit
            # clears when a line is entered: they never linger in the scrollback.
            bottom_toolbar=self.waiting,
            style=Style.from_dict({"bottom-toolbar": "noreverse"}),
        )

    def message(self) -> FormattedText:
        """The prompt text, evaluated at every redraw.

        During a /join it names the room being joined, where the next line goes.
        """
        conv = self.conversation
        nick_style = f"bold {PALETTE[nick_color(conv.me)][1]}" if self.color else ""
        parts: list[tuple[str, str]] = []
        if conv.client.status is State.RECONNECTING:
            parts.append(("ansired" if self.color else "", "(reconnecting) "))
        parts.append((nick_style, conv.me))
        room = self._room_after(len(conv.waiting))
        if room != conv.room:
            parts.append(("", f" #{room} (joining)> "))
        else:
            parts.append(("", f" #{room}> " if room else "> "))
        return FormattedText(parts)

    def _room_after(self, n: int) -> str | None:
        """The room plain lines go to once the first ``n`` waiting commands ran
        (a /join or /switch among them moves it; a refused one would not)."""
        conv = self.conversation
        room = conv.joining or conv.room
        for cmd in conv.waiting[:n]:
            if cmd.name in ("join", "switch"):
                room = cmd.target
        return room

    def waiting(self) -> FormattedText:
        """Under the input line: lines that wait (for the connection or the rate
        limit) until their echo prints them as messages, and commands not run yet."""
        conv = self.conversation
        dim = "ansibrightblack" if self.color else ""
        lines: list[str] = []
        for line in conv.pending.values():
            if line.why:
                why = "waiting for the rate limit" if line.why == "rate limit" else "queued"
                lines.append(f"… {why}: {line.where} {printable(line.text)}")
        lines += [
            f"… queued: {printable(_describe(cmd, self._room_after(i)))}"
            for i, cmd in enumerate(conv.waiting)
        ]
        return FormattedText([(dim, "\n".join(lines))])

    async def read_secret(self, label: str) -> str | None:
        """A line typed without echo (a password), kept in no history; None if abandoned."""
        session: PromptSession[str] = PromptSession(
            is_password=True,
            color_depth=None if self.color else ColorDepth.DEPTH_1_BIT,
        )
        try:
            return await session.prompt_async(
                label, handle_sigint=False, set_exception_handler=False
            )
        except (EOFError, KeyboardInterrupt):
            return None

    def redraw(self) -> None:
        """Redraws the prompt (the room or the connection changed)."""
        app = self.session.app
        if app.is_running:
            app.invalidate()

    async def read(self) -> str | None:
        """One line, or ``None`` when the user leaves with Ctrl-D or Ctrl-C."""
        try:
            # Signals are the caller's (SIGINT/SIGTERM end the program cleanly); a
            # problem in a background task must not stop the screen for "press ENTER".
            return await self.session.prompt_async(
                self.message, handle_sigint=False, set_exception_handler=False
            )
        except (EOFError, KeyboardInterrupt):
            # Not raised on: a KeyboardInterrupt in a task escapes the event loop.
            return None


async def interact(conversation: Conversation, prompt: Prompt) -> None:
    """Reads lines at the prompt and runs them until /quit, Ctrl-D or Ctrl-C.

    Commands run one at a time in a worker, so the prompt stays usable while
    one waits (for example, for the server to come back).

    Raises:
        ClientClosed: the client stopped for good.
    """
    queue: asyncio.Queue[Command] = asyncio.Queue()

    async def work() -> None:
        while True:
            cmd = await queue.get()
            conversation.waiting.remove(cmd)
            conversation.on_change()
            await conversation.execute(cmd)

    worker = asyncio.create_task(work())
    closed = asyncio.ensure_future(conversation.client.wait_closed())
    try:
        while True:
            reading = asyncio.ensure_future(prompt.read())
            await asyncio.wait({reading, closed, worker}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
                if closed.done():
                    closed.result()  # raises ClientClosed
                    return  # the client closed without an error: nothing more to do
                worker.result()  # raises what stopped the worker
                return
            line = reading.result()
            if line is None:
                return
            try:
                cmd = parse_line(line)
            except CommandError as exc:
                conversation.problem(str(exc))
                continue
            if cmd is None:
                continue
            if cmd.name == "quit":
                return
            if cmd.name == "password":
                await change_password(conversation, prompt)
                continue
            conversation.waiting.append(cmd)  # listed above the prompt until it runs
            queue.put_nowait(cmd)
    finally:
        for task in (worker, closed):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientClosed):
                await task


async def change_password(conversation: Conversation, prompt: Prompt) -> None:
    """``/password``: asks for the current and the new password (twice), not shown."""
    current = await prompt.read_secret("current password (empty if none): ")
    new = await prompt.read_secret("new password: ") if current is not None else None
    again = await prompt.read_secret("new password again: ") if new is not None else None
    if again is None or new is None or current is None:
        conversation.notice("password unchanged")
        return
    if not new:
        conversation.problem("an empty password is refused: password unchanged")
        return
    if new != again:
        conversation.problem("the two new passwords differ: password unchanged")
        return
    try:
        change = await conversation.client.set_password(current, new, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        conversation.problem(f"password unchanged: {rpc_problem(exc, tls=conversation.tls)}")
        return
    if not change.changed:
        conversation.notice("that is already your password")
    else:
        conversation.notice("password changed" if change.had_password else "password set")
