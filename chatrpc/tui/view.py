"""The conversation view: runs the user's commands against a client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from ..client import ChatClient, SendError, State
from ..v1 import chat_pb2 as pb
from .changes import ChangeCommands
from .commands import ACTION, CALL_TIMEOUT, CHANGES, Command
from .formatter import Formatter, printable
from .moderation import ModerationCommands
from .moderation_commands import MODERATION
from .output import PendingLine, rpc_problem
from .search import SearchCommand

#: How long ``/who``, ``/rooms`` and ``/history`` wait for a lost connection: past
#: the client's longest reconnect backoff (5 s).
RECONNECT_WAIT = 30.0


class ChatView(ChangeCommands, SearchCommand, ModerationCommands):
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
        self._mine: dict[str, dict[int, str]] = {}
        self._inflight: set[asyncio.Future[pb.Message]] = set()
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
        if name in ("who", "rooms", "history", "search"):
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
        elif name in CHANGES or name == "reply":
            await self.change(cmd)
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
        elif name == "search":
            await self.search(cmd)
        elif name in MODERATION:
            await self.moderate(cmd)
        elif name == "help":
            self.help()
        return True

    async def _online(self, name: str) -> bool:
        """Waits (a while) for the connection a call needs; says so once if it stays away."""
        if self.client.status is State.CONNECTED:
            return True
        self.notice(f"/{name} waits for the connection to come back")
        try:
            # Back in every room first: an answer from before that is out of date.
            await asyncio.wait_for(self.client.wait_resumed(), RECONNECT_WAIT)
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
