"""The transport-neutral session core, driven by a tiny in-memory transport.

No network: events go in through an async iterator fed by a queue, what the
session writes lands in a list. This is the shape every transport adapter has
(gRPC today), so these tests pin what an adapter may rely on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from chatrpc.errors import ChatError, Code
from chatrpc.hub import Hub, Limits
from chatrpc.model import StoredMessage
from chatrpc.session import INBOX_EVENTS, Ending, MalformedEvent, SessionRunner, ending
from chatrpc.session.runner import JOINS_AT_ONCE
from chatrpc.store import Account
from chatrpc.store.memory import MemoryStore
from chatrpc.subscriber import EndReason, Joined, Notice, Outgoing, Presence, Session
from chatrpc.v1 import chat_pb2 as pb

WAIT = 10.0


class MemoryTransport:
    """One client of the session core: events in through a queue, items out to a list."""

    def __init__(self) -> None:
        self._events: asyncio.Queue[pb.ClientEvent | BaseException | None] = asyncio.Queue()
        self.written: list[Outgoing] = []
        self._changed = asyncio.Event()
        #: While cleared, writes block (a client that stopped reading).
        self.reading = asyncio.Event()
        self.reading.set()
        self.writes_blocked = 0

    def send(self, event: pb.ClientEvent) -> None:
        self._events.put_nowait(event)

    def half_close(self) -> None:
        self._events.put_nowait(None)

    def fail_with(self, exc: BaseException) -> None:
        self._events.put_nowait(exc)

    async def events(self) -> AsyncIterator[pb.ClientEvent]:
        while True:
            item = await self._events.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def write(self, items: list[Outgoing]) -> None:
        if not self.reading.is_set():
            self.writes_blocked += 1
            self._changed.set()
        await self.reading.wait()
        self.written.extend(items)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def messages(self) -> list[StoredMessage]:
        return [i for i in self.written if isinstance(i, StoredMessage)]


def join(room: str) -> pb.ClientEvent:
    return pb.ClientEvent(join=pb.Join(room=room))


def send(room: str, text: str, client_msg_id: str = "") -> pb.ClientEvent:
    return pb.ClientEvent(send=pb.Send(room=room, text=text, client_msg_id=client_msg_id))


class Core:
    """A hub over a memory store, and a runner opening sessions on it."""

    def __init__(self, runner: SessionRunner, hub: Hub) -> None:
        self.runner = runner
        self.hub = hub

    async def start(self, user: str, transport: MemoryTransport) -> asyncio.Task[Ending]:
        async def same_user() -> str:
            return user

        session = await self.runner.open(same_user, f"token-of-{user}")
        return asyncio.create_task(self.runner.run(session, transport.events(), transport.write))


@pytest.fixture
async def core() -> AsyncIterator[Core]:
    store = MemoryStore()
    await store.open()
    hub = Hub(store, Limits(rate_limit=0))
    try:
        yield Core(SessionRunner(hub, queue_size=16, stall_timeout_s=0.2), hub)
    finally:
        hub.shutdown()
        await store.close()


async def test_a_session_over_a_memory_transport_echoes_and_ends_after_half_close(
    core: Core,
) -> None:
    alice = MemoryTransport()
    running = await core.start("alice", alice)
    alice.send(join("general"))
    for i in range(5):
        alice.send(send("general", f"hi {i}", f"c{i}"))
    alice.half_close()
    end = await asyncio.wait_for(running, WAIT)
    assert (end.reason, end.code) == (EndReason.DONE, None)
    assert isinstance(alice.written[0], Joined)
    assert [m.text for m in alice.messages()] == [f"hi {i}" for i in range(5)]
    assert [m.seq for m in alice.messages()] == [1, 2, 3, 4, 5]
    assert core.hub.sessions_open == 0


async def test_two_sessions_on_the_memory_transport_see_each_others_messages(core: Core) -> None:
    alice, bob = MemoryTransport(), MemoryTransport()
    runs = [await core.start("alice", alice), await core.start("bob", bob)]
    alice.send(join("general"))
    await alice.until(lambda: any(isinstance(i, Joined) for i in alice.written))
    bob.send(join("general"))
    await alice.until(lambda: any(isinstance(i, Presence) for i in alice.written))
    bob.send(send("general", "hello alice", "b1"))
    await alice.until(lambda: [m.text for m in alice.messages()] == ["hello alice"])
    for t in (alice, bob):
        t.half_close()
    assert [(await r).reason for r in runs] == [EndReason.DONE, EndReason.DONE]


async def test_a_frame_that_is_not_an_event_ends_the_session_as_malformed(core: Core) -> None:
    alice = MemoryTransport()
    running = await core.start("alice", alice)
    alice.fail_with(MalformedEvent("not JSON"))
    end = await asyncio.wait_for(running, WAIT)
    assert (end.reason, end.code) == (EndReason.MALFORMED, Code.INVALID_ARGUMENT)
    assert core.hub.sessions_open == 0


async def test_a_write_that_fails_ends_the_session_as_gone_and_closes_it(core: Core) -> None:
    alice = MemoryTransport()

    async def broken(items: list[Outgoing]) -> None:
        raise ConnectionResetError("the client went away")

    async def same_user() -> str:
        return "alice"

    session = await core.runner.open(same_user, "t")
    running = asyncio.create_task(core.runner.run(session, alice.events(), broken))
    alice.send(join("general"))
    end = await asyncio.wait_for(running, WAIT)
    assert (end.reason, end.code) == (EndReason.GONE, None)
    assert core.hub.sessions_open == 0 and core.hub.presence.sessions_in("general") == []
    # Gone without a word: online for the presence grace (see test_presence_grace).
    assert core.hub.online("general") == ["alice"]


async def test_a_session_reads_its_credential_once_unless_a_revocation_came_between(
    core: Core,
) -> None:
    reads: list[str] = []

    async def credential() -> str:
        reads.append("alice")
        return "alice"

    session = await core.runner.open(credential, "t1")
    assert reads == ["alice"] and core.hub.sessions_open == 1
    core.hub.disconnect(session)

    # A Logout lands after the token was read, before the session is registered:
    # its revocation ends no session yet, so the token is read again, and refused.
    async def revoked_meanwhile() -> str:
        reads.append("bob")
        if len(reads) == 2:
            assert core.hub.revoke("bob", "t2") == 0
            return "bob"
        raise ChatError(Code.UNAUTHENTICATED, "invalid or revoked token: log in again")

    with pytest.raises(ChatError) as refused:
        await core.runner.open(revoked_meanwhile, "t2")
    assert refused.value.code is Code.UNAUTHENTICATED
    assert reads == ["alice", "bob", "bob"] and core.hub.sessions_open == 0


async def test_a_session_that_stops_reading_leaves_its_rooms_then_learns_why(core: Core) -> None:
    """Past its queue bound while its writes block: after the stall timeout its
    presence clears; when it reads again it is told it was a slow consumer, with
    where to resume."""
    alice, bob = MemoryTransport(), MemoryTransport()
    runs = [await core.start("alice", alice), await core.start("bob", bob)]
    alice.send(join("general"))
    await alice.until(lambda: any(isinstance(i, Joined) for i in alice.written))
    bob.send(join("general"))
    await bob.until(lambda: any(isinstance(i, Joined) for i in bob.written))
    bob.send(send("general", "first", "b0"))
    await bob.until(lambda: len(bob.messages()) == 1)
    await alice.until(lambda: len(alice.messages()) == 1)
    alice.reading.clear()
    bob.send(send("general", "m1", "b1"))
    await alice.until(lambda: alice.writes_blocked > 0)
    # In steps smaller than the bound, so only alice, who does not read, overflows.
    for step in range(3):
        for i in range(10):
            bob.send(send("general", f"m{step} {i}", f"b{step}-{i}"))
        await bob.until(lambda: len(bob.messages()) == 2 + 10 * (step + 1))  # noqa: B023
    await bob.until(
        lambda: any(
            isinstance(i, Presence) and not i.joined and i.user == "alice" for i in bob.written
        )
    )
    assert core.hub.online("general") == ["bob"]
    assert core.hub.sessions_open == 2  # still counted until its stream ends
    alice.reading.set()
    end = await asyncio.wait_for(runs[0], WAIT)
    assert (end.reason, end.code) == (EndReason.SLOW_CONSUMER, Code.RESOURCE_EXHAUSTED)
    # The write in flight when it stopped reading went out; the rest was dropped.
    assert [m.seq for m in alice.messages()] == [1, 2]
    assert end.retry and end.message == "slow consumer: resume from seq 2 in #general"
    bob.half_close()
    await asyncio.wait_for(runs[1], WAIT)


def test_every_end_reason_has_one_code_and_message_for_every_transport() -> None:
    retried = {r for r in EndReason if ending(r).retry}
    assert retried == {EndReason.SLOW_CONSUMER, EndReason.SHUTDOWN}
    assert ending(EndReason.REVOKED).code is Code.UNAUTHENTICATED
    assert ending(EndReason.FAILED).message == "internal error; it has been logged"
    assert all(ending(r).code is None for r in (EndReason.DONE, EndReason.GONE))


class _BrokenLookups(MemoryStore):
    """A store whose account lookups fail with an error that is not a ChatError."""

    async def get_account(self, user: str) -> Account | None:
        raise RuntimeError("READONLY You can't write against a read only replica")


async def test_a_store_error_checking_a_send_is_answered_and_the_session_goes_on() -> None:
    store = _BrokenLookups()
    await store.open()
    hub = Hub(store, Limits(rate_limit=0))
    core = Core(SessionRunner(hub, queue_size=16, stall_timeout_s=0.2), hub)
    try:
        alice = MemoryTransport()
        running = await core.start("alice", alice)
        alice.send(pb.ClientEvent(send=pb.Send(to_user="bob", text="psst", client_msg_id="d1")))
        alice.send(join("general"))
        alice.send(send("general", "still here", "c1"))
        alice.half_close()
        end = await asyncio.wait_for(running, WAIT)
        assert end.reason is EndReason.DONE
        errors = [i for i in alice.written if isinstance(i, Notice)]
        assert [(e.code, e.client_msg_id) for e in errors] == [("INTERNAL", "d1")]
        assert [m.text for m in alice.messages()] == ["still here"]
    finally:
        hub.shutdown()
        await store.close()


async def test_a_processor_that_fails_ends_the_session_even_with_a_full_inbox(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: SessionRunner, event: pb.ClientEvent, session: object) -> None:
        raise RuntimeError("a bug in an event handler")

    monkeypatch.setattr(SessionRunner, "_handle", broken)
    alice = MemoryTransport()
    running = await core.start("alice", alice)
    for _ in range(INBOX_EVENTS * 2):  # more than the inbox holds, never half-closed
        alice.send(join("general"))
    end = await asyncio.wait_for(running, WAIT)
    assert (end.reason, end.code) == (EndReason.FAILED, Code.INTERNAL)
    assert core.hub.sessions_open == 0


async def test_an_idle_session_holds_no_event_processor_and_bursts_keep_their_order(
    core: Core,
) -> None:
    """The processor runs while events wait and ends when the inbox is empty: an
    idle session is its run task and its reader, and each burst after a pause
    starts a processor again, in order."""
    before = asyncio.all_tasks()
    alice = MemoryTransport()
    running = await core.start("alice", alice)
    alice.send(join("general"))
    await alice.until(lambda: any(isinstance(i, Joined) for i in alice.written))
    for burst in range(3):
        for i in range(5):
            alice.send(send("general", f"b{burst} m{i}", f"c{burst}-{i}"))
        want = 5 * (burst + 1)
        await alice.until(lambda: len(alice.messages()) == want)  # noqa: B023 (awaited here)
        held = asyncio.all_tasks() - before
        assert len(held) == 2, held  # the run task and its reader: no processor
    assert [m.seq for m in alice.messages()] == list(range(1, 16))
    assert [m.text for m in alice.messages()][-1] == "b2 m4"
    alice.half_close()
    assert (await asyncio.wait_for(running, WAIT)).reason == EndReason.DONE


async def test_joins_past_the_bound_wait_their_turn_and_all_are_answered(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most JOINS_AT_ONCE joins are handled at a time on a server (a reconnect
    storm's joins never crowd out new sessions); the others wait, in order."""
    inside, most, entered = 0, 0, []
    full, release = asyncio.Event(), asyncio.Event()
    real_join = Hub.join

    async def held(
        self: Hub, session: Session, room: str, after_seq: int | None = None, epoch: str = ""
    ) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        entered.append(session.user)
        if inside == JOINS_AT_ONCE:
            full.set()
        try:
            await release.wait()
            await real_join(self, session, room, after_seq, epoch)
        finally:
            inside -= 1

    monkeypatch.setattr(Hub, "join", held)
    n = JOINS_AT_ONCE + 8
    clients = [MemoryTransport() for _ in range(n)]
    for i, client in enumerate(clients):
        await core.start(f"u{i}", client)
        client.send(join(f"room{i}"))  # a room each: no presence to overflow the queues
    await asyncio.wait_for(full.wait(), WAIT)
    for _ in range(100):  # every other processor gets its turn to try
        await asyncio.sleep(0)
    assert (inside, most) == (JOINS_AT_ONCE, JOINS_AT_ONCE)
    release.set()
    for client in clients:
        written = client.written
        await client.until(lambda: any(isinstance(i, Joined) for i in written))  # noqa: B023
    assert most == JOINS_AT_ONCE
    assert entered == [f"u{i}" for i in range(n)]
