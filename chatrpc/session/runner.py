"""One Chat session from open to end, over any transport.

The two directions are independent. A reader takes the client's events in order
into a bounded inbox, so reading goes on while a commit is in flight and a full
inbox holds the client back (the transport's flow control) instead of growing;
a processor handles them, committing sends that queued up together in one go,
and runs only while events wait (an idle session is two tasks: reader, writer);
the writer drains the session's queue to the transport. The session ends with a
named reason (:class:`~chatrpc.subscriber.EndReason`), which the transport maps
to its wire through :func:`chatrpc.session.ending`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from google.protobuf.message import DecodeError

from ..errors import INTERNAL_MESSAGE, ChatError, Code
from ..hub import Hub
from ..model import seq_field
from ..subscriber import End, EndReason, Notice, Outgoing, Session
from ..v1 import chat_pb2 as pb
from ..waits import Inbox
from . import signals
from .admission import Admission, Slot, no_slot
from .ends import Ending, ending
from .linger import PresencePace, next_write
from .stored import STORED, commit_group

log = logging.getLogger(__name__)

#: Client events read ahead of processing, and the most sends committed together.
INBOX_EVENTS = 256

#: Joins (and DM resumes) handled at once on this server; the others wait their
#: turn, in order. A reconnect storm's joins (store reads, presence) then take
#: the event loop a few at a time and never crowd out the opening of the new
#: sessions, whose clients wait for the call's headers (see docs/BENCHMARKS.md).
JOINS_AT_ONCE = 8

#: How long a session's end waits for its event processor to stop, in seconds.
PROCESSOR_STOP_S = 5.0

#: Ends after which the user stays online for the presence grace: they did not
#: say goodbye and their client reconnects (see chatrpc.presence).
LINGERING = frozenset({EndReason.GONE, EndReason.SHUTDOWN, EndReason.SLOW_CONSUMER})

#: Writes outgoing items to the client, in order; raises if the client is gone.
Write = Callable[[list[Outgoing]], Awaitable[None]]


class MalformedEvent(Exception):
    """A transport's frame that is not a ``ClientEvent`` (the client's fault)."""


class ClientGone(Exception):
    """Raised by a transport's events when the client vanished rather than said
    goodbye (its user lingers for the presence grace; see chatrpc.presence)."""


class SessionRunner:
    """Opens sessions on a :class:`Hub` and runs each until it ends."""

    def __init__(self, hub: Hub, *, queue_size: int, stall_timeout_s: float) -> None:
        self.hub = hub
        self.queue_size = queue_size
        self.stall_timeout_s = stall_timeout_s
        self._watchdogs: set[asyncio.Task[None]] = set()
        self.admission = Admission(hub.limits.max_opening)
        self._joins = asyncio.Semaphore(JOINS_AT_ONCE)

    def admit(self, who: str = "") -> Slot:
        """A slot to open a session in, or ChatError(UNAVAILABLE, "server busy ...
        retry in N s") past ``--max-opening`` (see chatrpc.session.admission); call
        before authenticating, and pass the returned release to :meth:`run`."""
        return self.admission.enter(who)

    async def open(
        self,
        authenticate: Callable[[], Awaitable[str]],
        token_hash: str,
        *,
        transport: str = "",
        peer: str = "",
    ) -> Session:
        """Authenticates a new session (``authenticate`` returns its user or raises
        ChatError) and registers it with the hub.

        No session outlives its token. A Logout (or a revocation through another
        server) lands before the token is read, which fails; or after the session
        is registered, and ends it (:meth:`Hub.revoke`); or in between, and then
        the token is read again. Else it is read once."""
        revocations = self.hub.revocations
        user = await authenticate()
        session = Session(user, self.queue_size, transport=transport, peer=peer)
        self.hub.connect(session, token_hash)
        try:
            if self.hub.revocations != revocations and await authenticate() != user:
                raise ChatError(Code.UNAUTHENTICATED, "invalid or revoked token: log in again")
            await self.hub.guard.greet(session)
        except BaseException:
            self.hub.disconnect(session)
            raise
        return session

    async def run(
        self,
        session: Session,
        events: AsyncIterator[pb.ClientEvent],
        write: Write,
        opened: Slot | None = None,
        *,
        settle_s: float = 0.0,
    ) -> Ending:
        """Runs ``session`` until it ends; returns what to tell the client. The
        session is closed after. ``opened`` (the release of :meth:`admit`) is
        called once the events that came with the session are handled. The end
        of ``events`` is a goodbye ``settle_s`` later (a transport may report a
        dropped client as an end first, then cancel the session).
        ``events`` raises :class:`MalformedEvent` (or protobuf's ``DecodeError``)
        for a frame that is not an event; ``write`` raises when the client is gone."""
        runner = asyncio.current_task()
        assert runner is not None
        opened = opened or no_slot()
        log.info(
            "session %d of %s opened (%s %s)",
            session.id,
            session.user,
            session.transport,
            session.peer,
            extra=_fields(session),
        )
        session.on_stop = functools.partial(_watch_stalled, self, session, runner)
        reader: asyncio.Task[None] | None = None
        reason = EndReason.GONE
        try:
            reader = asyncio.create_task(self._read(events, session, opened, settle_s))
            reason = await self._write_loop(session, write)
            # The resume points, while the session still knows them (until it closes).
            return ending(reason, session.cursors())
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            opened()
            self.hub.disconnect(session, linger=reason in LINGERING)
            # on_stop refers to this task, whose frame refers to the session:
            # break the cycle so the session is freed now, not by a full collection.
            session.on_stop = None
            self.hub.stats.ended[reason.value] += 1
            log.info(
                "session %d of %s closed (%s)",
                session.id,
                session.user,
                reason.value,
                extra=_fields(session, reason=reason.value),
            )

    async def _write_loop(self, session: Session, write: Write) -> EndReason:
        """Writes what the session queues until it ends; returns why it ended.

        Whatever queued up while a write was in flight goes out together.
        """
        stats = self.hub.stats
        pace = PresencePace()
        while True:
            items = await next_write(session, pace)
            end = items[-1] if isinstance(items[-1], End) else None
            if end is not None:
                items = items[:-1]
            session.writing = True
            try:
                if items:
                    await write(items)
                    stats.deliveries += len(items)
                    stats.writes += 1
                    stats.write_batch.observe(len(items))
                session.writing = False
            except Exception as exc:
                # A transport fails a write when the client went away under it
                # (grpcio: ExecuteBatchError); the items are in hand, so nothing
                # else can fail here.
                log.debug("session %d: write failed (%r): client gone", session.id, exc)
                return EndReason.GONE
            if end is not None:
                return end.reason
            del items  # written: an idle session keeps none of it while it waits

    async def _read(
        self,
        events: AsyncIterator[pb.ClientEvent],
        session: Session,
        opened: Slot,
        settle_s: float = 0.0,
    ) -> None:
        """The reader: takes the client's events in order until it half-closes.

        A processor task handles them. It is started when an event arrives and
        ends once the inbox is empty, so an idle session holds no processor.
        """
        inbox: Inbox[pb.ClientEvent | None] = Inbox(INBOX_EVENTS)
        # The processor while it runs: it takes itself out when done, so an idle
        # session keeps no finished task either.
        running: list[asyncio.Task[None]] = []
        try:
            async for event in events:
                opened.busy()
                await inbox.put(event)
                if running and running[0].done():
                    failed = running[0]
                    if not failed.cancelled() and failed.exception() is not None:
                        # It failed (its error is logged as it stops): end the session
                        # rather than leave the client's events unanswered.
                        session.end(EndReason.FAILED)
                        return
                    running.clear()  # it found the inbox empty and ended
                if not running:
                    _start(running, self._process(inbox, session, opened), session)
            if settle_s:
                await asyncio.sleep(settle_s)
            await inbox.put(None)
            if not running or running[0].done():
                running.clear()
                _start(running, self._process(inbox, session, opened), session)
            await running[0]
        except asyncio.CancelledError:
            raise
        except ClientGone:
            session.end(EndReason.GONE)
            return
        except (DecodeError, MalformedEvent):
            # Bytes that are not a ClientEvent: the client's fault, not worth a traceback.
            log.info("session %d: malformed event, ending it", session.id)
            session.end(EndReason.MALFORMED)
            return
        except Exception:
            # The stream itself broke (not one event): end the session.
            log.exception("session %d: reading events failed", session.id)
            session.end(EndReason.FAILED)
            return
        finally:
            if running:
                await _stop_processor(running[0], inbox)
        session.end(EndReason.DONE)

    async def _process(
        self, inbox: Inbox[pb.ClientEvent | None], session: Session, opened: Callable[[], None]
    ) -> None:
        """Handles events in order until the inbox is empty (or the client
        half-closed); sends and changes that queued up together are committed
        together. Calls ``opened`` whenever the inbox is left empty."""
        received = self.hub.stats.received
        after: list[pb.ClientEvent | None] = []  # the event taken after a run of sends
        while after or not inbox.empty():
            event = after.pop() if after else inbox.get_nowait()
            if event is None:
                return
            kind = event.WhichOneof("event") or "empty"
            received[kind] += 1
            if kind not in STORED:
                await self._handle(event, session)
            else:
                sends = [event]
                while len(sends) < INBOX_EVENTS and not inbox.empty():
                    follower = inbox.get_nowait()
                    if follower is None or follower.WhichOneof("event") not in STORED:
                        after.append(follower)
                        break
                    received[follower.WhichOneof("event") or "empty"] += 1
                    sends.append(follower)
                await commit_group(self.hub, sends, session)
            if not after and inbox.empty():
                opened()

    async def _handle(self, event: pb.ClientEvent, session: Session) -> None:
        """Handles one event other than a send (sends go through
        :func:`~chatrpc.session.stored.commit_group`)."""
        kind = event.WhichOneof("event")
        try:
            if kind == "join":
                join = event.join
                after = (
                    seq_field(join.after_seq, "after_seq") if join.HasField("after_seq") else None
                )
                async with self._joins:
                    if join.WhichOneof("target") == "with_user":
                        await self.hub.resume_direct(session, join.with_user, after, join.epoch)
                    else:
                        await self.hub.join(session, join.room, after, join.epoch)
            elif kind == "leave":
                await self.hub.leave(session, event.leave.room)
            else:
                await signals.handle(self.hub, session, event)
        except ChatError as exc:
            session.push(Notice(exc.code.name, exc.message))
        except Exception:
            log.exception("session %d: %s event failed", session.id, kind)
            session.push(Notice(Code.INTERNAL.name, INTERNAL_MESSAGE))


def _watch_stalled(owner: SessionRunner, session: Session, runner: asyncio.Task[Any]) -> None:
    """Called when a session overflows or is ended. A writer blocked on a client
    that stopped reading would never see that, so after a grace period the
    session leaves its rooms (its presence clears) while its stream stays open:
    the client learns why it ended once it reads again.

    The stream is not cancelled: a cancelled grpc.aio handler sends the client
    no status at all, so a client that reads again later (a suspended
    terminal) would wait forever. The parked session still counts against its
    user's session limit, so not reading cannot pin more than that.
    """
    if not session.writing:
        return  # the writer is not blocked: it will find the end in its queue

    async def watch() -> None:
        await asyncio.sleep(owner.stall_timeout_s)
        if session.writing and not runner.done():
            log.info(
                "session %d of %s: client stopped reading; it leaves its rooms",
                session.id,
                session.user,
            )
            owner.hub.park(session)

    task = asyncio.create_task(watch())
    owner._watchdogs.add(task)
    task.add_done_callback(owner._watchdogs.discard)


def _start(
    running: list[asyncio.Task[None]], process: Coroutine[Any, Any, None], session: Session
) -> None:
    """Starts a session's event processor as the one in ``running``."""
    processor = asyncio.create_task(process)
    running.append(processor)
    # A processor that fails ends the session at once (its error is logged as
    # it stops), even while the reader waits on a full inbox.
    processor.add_done_callback(functools.partial(_end_if_failed, session))
    processor.add_done_callback(functools.partial(_forget, running))


def _forget(running: list[asyncio.Task[None]], processor: asyncio.Task[None]) -> None:
    if running and running[0] is processor:
        running.clear()


def _end_if_failed(session: Session, processor: asyncio.Task[None]) -> None:
    if not processor.cancelled() and processor.exception() is not None:
        session.end(EndReason.FAILED)


def _fields(session: Session, **more: str) -> dict[str, object]:
    """A session's fields for a log line (see chatrpc.logs)."""
    return {
        "session": session.id,
        "user": session.user,
        "transport": session.transport,
        "peer": session.peer,
        **more,
    }


async def _stop_processor(
    processor: asyncio.Task[None], inbox: Inbox[pb.ClientEvent | None]
) -> None:
    """Cancels a session's event processor (if it still runs) and waits for it. A
    library can lose a cancellation (see chatrpc.store.redis), so the processor
    also finds the end of its inbox, and the wait is bounded: a session never
    outlives its client."""
    processor.cancel()
    while not inbox.empty():
        inbox.get_nowait()  # the client resends what was not acknowledged
    inbox.put_nowait(None)
    await asyncio.wait({processor}, timeout=PROCESSOR_STOP_S)
    if not processor.done():
        log.warning("a session's event processor did not stop; leaving it")
    elif not processor.cancelled() and processor.exception() is not None:
        log.error("a session's event processor failed", exc_info=processor.exception())
