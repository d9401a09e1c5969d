"""Sends not acknowledged yet: answered by their echo, retried after a refusal that
may pass (a rate limit), written in the order they were made.

Edits, deletes and reactions are stored items too: they go through the same
queue as sends (:data:`Stored`), with the same guarantees (stored once by their
``client_msg_id``, answered by their echo or an ``ack``, written in order)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from ..v1 import chat_pb2 as pb
from .errors import SendError
from .stream import ChatStream

#: The wait a refusal names ("rate limit: retry in 0.3 s").
_RETRY_HINT = re.compile(r"retry in (\d+(?:\.\d+)?) ?s\b")

#: How many times in a row one send refused for a reason that may pass (a rate
#: limit, a store that is away) is written again before it fails for good.
SEND_RETRIES = 100


#: What the queue writes: a send, or a change of a stored message.
Stored = pb.Send | pb.Edit | pb.Delete | pb.React


def client_event(item: Stored) -> pb.ClientEvent:
    """The ``ClientEvent`` that carries ``item``."""
    if isinstance(item, pb.Edit):
        return pb.ClientEvent(edit=item)
    if isinstance(item, pb.Delete):
        return pb.ClientEvent(delete=item)
    if isinstance(item, pb.React):
        return pb.ClientEvent(react=item)
    return pb.ClientEvent(send=item)


#: The kind of stored item each kind of change becomes (the echo's ``kind``).
_KINDS = {pb.Edit: pb.Message.EDIT, pb.Delete: pb.Message.DELETE, pb.React: pb.Message.REACTION}


def retry_delay(message: str) -> float | None:
    """The wait in seconds a refusal's message hints at, if it names one."""
    match = _RETRY_HINT.search(message)
    return float(match.group(1)) if match else None


def new_client_msg_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class PendingSend:
    """A send not yet acknowledged by its echo.

    ``held`` while it waits (until ``retry_at``, loop time) to be written again
    after a refusal that may pass (a rate limit); ``refusals`` counts those.
    """

    send: Stored
    future: asyncio.Future[pb.Message]
    held: bool = False
    retry_at: float = 0.0
    refusals: int = 0
    #: Whether ``on_held`` was told it waits for the rate limit.
    told: bool = False


@dataclass(slots=True)
class Backoff:
    """Capped exponential delays (seconds): ``initial`` doubled per attempt up to ``cap``."""

    initial: float
    cap: float

    def delay(self, attempt: int) -> float:
        """The delay before ``attempt`` (0 first), without jitter."""
        return min(self.cap, self.initial * 2.0**attempt)


class Sends:
    """The sends of a client not answered yet, in the order they were made.

    Args:
        on_held: told of a send that waits for the rate limit, with the wait.
        backoff: the retry delays of a refusal that names no wait.
        connected: set while a session is up.
        stream: the stream of the current session (None between sessions).
        closing: whether the client is stopping for good (no more retries).
    """

    def __init__(
        self,
        *,
        on_held: Callable[[Stored, float], None],
        backoff: Backoff,
        connected: asyncio.Event,
        stream: Callable[[], ChatStream | None],
        closing: Callable[[], bool],
    ) -> None:
        self.pending: dict[str, PendingSend] = {}
        self._on_held = on_held
        self._backoff = backoff
        self._connected = connected
        self._stream = stream
        self._closing = closing
        #: Writes held sends again, one at a time and in order (see _release_held).
        self._releaser: asyncio.Task[None] | None = None
        #: Set whenever a pending send is answered (echo, ack or refusal).
        self._answered = asyncio.Event()

    def holding(self) -> bool:
        """Whether a send waits for a retry: later sends are not written before it."""
        return any(p.held and p.refusals for p in self.pending.values())

    async def send(self, send: Stored, *, ordered: bool) -> pb.Message:
        """Writes ``send`` now, or after the sends before it; returns its echo.

        With ``ordered``, a send waits until the one before it was answered; without,
        only behind one that waits for its retry.
        """
        future: asyncio.Future[pb.Message] = asyncio.get_running_loop().create_future()
        pending = PendingSend(send, future)
        if self.holding() or (ordered and self.pending):
            # Behind a send not answered yet (ordered), or waiting for its retry:
            # written after it, in order.
            self.hold(pending)
            return await future
        self.pending[send.client_msg_id] = pending
        stream = self._stream()
        if self._connected.is_set() and stream is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await stream.write(client_event(send))
        return await future

    def hold(self, pending: PendingSend) -> None:
        """Queues ``pending`` behind the sends before it: written once they are answered."""
        behind_retry = self.holding()
        pending.held = True
        self.pending[pending.send.client_msg_id] = pending
        if behind_retry:
            pending.told = True
            self._on_held(pending.send, 0.0)
        self._start_releaser()

    def echoed(self, msg: pb.Message) -> None:
        """Resolves the send ``msg`` (an own message) is the echo of, if it waits."""
        pending = self.pending.pop(msg.client_msg_id, None)
        if pending is None:
            return
        if not pending.future.done():
            pending.future.set_result(msg)
        self._answered.set()

    def acked(self, ack: pb.Ack, me: str) -> None:
        """Resolves the send an ``ack`` answers, if it still waits, with its stored seq."""
        pending = self.pending.pop(ack.client_msg_id, None)
        if pending is None:
            return
        self._answered.set()  # sends held behind it may go now
        if pending.future.done():
            return
        sent = pending.send
        msg = pb.Message(seq=ack.seq, sender=me, client_msg_id=ack.client_msg_id)
        if isinstance(sent, pb.Send | pb.Edit):
            msg.text = sent.text
        if isinstance(sent, pb.Send):
            msg.reply_to = sent.reply_to
        else:
            msg.kind, msg.target_seq = _KINDS[type(sent)], sent.seq
        if isinstance(sent, pb.React):
            msg.emoji, msg.remove = sent.emoji, sent.remove
        if ack.WhichOneof("target") == "room":
            msg.room = ack.room
        else:
            msg.to_user = ack.to_user
        pending.future.set_result(msg)

    def refused(self, err: pb.Error) -> bool:
        """Takes an ``error`` that answers a pending send; False if it answers none.

        The send fails its caller, or, when the refusal may pass (a rate limit; a
        store that is away), is held and written again after the hinted wait (a
        capped backoff without a hint), with its ``client_msg_id``. Sends after a
        held one wait behind it (see :meth:`_release_held`).
        """
        pending = self.pending.get(err.client_msg_id) if err.client_msg_id else None
        if pending is None:
            return False
        self._answered.set()
        pending.refusals += 1
        if (
            err.code in (pb.Error.RESOURCE_EXHAUSTED, pb.Error.UNAVAILABLE)
            and pending.refusals <= SEND_RETRIES
            and not self._closing()
        ):
            self._retry_later(pending, retry_delay(err.message))
            return True
        del self.pending[pending.send.client_msg_id]
        if not pending.future.done():
            pending.future.set_exception(SendError(err))
        return True

    def _retry_later(self, pending: PendingSend, hint: float | None) -> None:
        if hint is None:
            hint = self._backoff.delay(pending.refusals - 1) * random.uniform(0.5, 1.5)
        delay = hint
        pending.held = True
        pending.retry_at = asyncio.get_running_loop().time() + delay
        # It waits, and so does every send held behind it.
        for p in self.pending.values():
            if p.held and not p.told:
                p.told = True
                self._on_held(p.send, delay if p is pending else 0.0)
        self._start_releaser()

    def _start_releaser(self) -> None:
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.create_task(self._release_held())

    async def _release_held(self) -> None:
        """Writes held sends in their order, one at a time: each once every send
        written before it was answered and the wait its refusal named (if any) has
        passed. So a later line never overtakes an earlier one waiting for its
        retry. Ends when nothing is held."""
        loop = asyncio.get_running_loop()
        while True:
            # Sends on their way (not held) are answered first; a reconnect
            # writes them again by itself.
            while any(not p.held for p in self.pending.values()):
                self._answered.clear()
                await self._answered.wait()
            first = next((p for p in self.pending.values() if p.held), None)
            if first is None:
                return
            delay = first.retry_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._connected.wait()
            stream = self._stream()
            if not first.held or first.future.done() or stream is None:
                continue
            first.held = False
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await stream.write(client_event(first.send))

    async def write_unheld(self, stream: ChatStream, skip: set[str] | None = None) -> set[str]:
        """Writes the pending sends not held (but those in ``skip``) on a new stream,
        with their ids (the server stores each once); returns the ids of all pending."""
        ids = set(self.pending)
        for cid, p in list(self.pending.items()):
            if not p.held and (skip is None or cid not in skip):
                await stream.write(client_event(p.send))
        return ids

    def fail_all(self, exc: BaseException) -> None:
        """Fails every pending send with ``exc`` (the client stopped)."""
        for p in self.pending.values():
            if not p.future.done():
                p.future.set_exception(exc)
        self.pending.clear()
        self._answered.set()

    def stop(self) -> None:
        """Stops writing held sends again."""
        if self._releaser is not None:
            self._releaser.cancel()
