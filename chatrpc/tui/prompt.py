"""The interactive prompt: prompt_toolkit in the same asyncio loop as the client."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from prompt_toolkit import PromptSession
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.styles import Style

from ..client import ClientClosed, State
from .commands import CALL_TIMEOUT, Command, CommandError, parse_line
from .formatter import PALETTE, nick_color, printable
from .output import rpc_problem
from .signals import describe, typing_target
from .view import ChatView


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

    def __init__(self, conversation: ChatView, *, color: bool) -> None:
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
        # Typing notices while a line is typed (the client sends one every few seconds).
        self.session.default_buffer.on_text_changed += self._typed

    def _typed(self, buffer: Buffer) -> None:
        target = typing_target(buffer.text, self.conversation.room)
        if target is not None:
            self.conversation.signals.typed(*target)

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
        typists = conv.signals.typists
        for where in typists.conversations():
            if where.startswith("@") or where == f"#{conv.room}":
                place = f"in {where}" if where.startswith("#") else "to you"
                lines.append(f"… {describe(typists.typing(where))} {place}")
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


async def interact(conversation: ChatView, prompt: Prompt) -> None:
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


async def change_password(conversation: ChatView, prompt: Prompt) -> None:
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
