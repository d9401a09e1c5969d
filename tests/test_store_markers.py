"""The read markers and cluster signals roles of the store contract, on every store
(memory, SQLite, and Redis on a real redis-server), and signals between two Redis
stores sharing one server."""

from __future__ import annotations

import asyncio

from chatrpc.mentions import mentions
from chatrpc.model import DELETE, EDIT, REACTION, dm_key, room_key
from chatrpc.store import UNREAD_CAP, Signal, Span, Store, Unread, open_store
from chatrpc.store.signals import READ, TYPING

from . import test_store as contract
from .redis_fixture import RedisServer
from .test_store import WAIT, dm_draft, room_draft
from .test_store_changes import change

#: The store contract suite's fixtures: every store, opened and closed for each test.
make_store = contract.make_store
store = contract.store


async def test_a_read_marker_only_moves_forward(store: Store) -> None:
    general = room_key("general")
    await store.append_many([room_draft("general", "bob", f"m{i}") for i in range(5)])
    assert await store.read_marker("alice", general) == 0
    assert await store.mark_read("alice", general, 3)
    assert not await store.mark_read("alice", general, 3)
    assert not await store.mark_read("alice", general, 2)
    assert await store.read_marker("alice", general) == 3
    assert await store.mark_read("alice", general, 5)
    assert await store.read_marker("alice", general) == 5


async def test_read_markers_are_per_user_and_conversation(store: Store) -> None:
    general, dm = room_key("general"), dm_key("alice", "bob")
    await store.append_many([room_draft("general", "bob", "r"), dm_draft("alice", "bob", "d")])
    await store.mark_read("alice", general, 1)
    await store.mark_read("bob", dm, 1)
    got = await store.read_markers("alice", [general, dm, room_key("never")])
    assert got == [1, 0, 0]
    assert await store.read_markers("bob", [dm, general]) == [1, 0]
    assert await store.read_markers("bob", []) == []


async def test_concurrent_marks_keep_the_highest(store: Store) -> None:
    general = room_key("general")
    await store.append_many([room_draft("general", "bob", f"m{i}") for i in range(50)])
    seqs = list(range(1, 51))
    seqs.reverse()
    moved = await asyncio.gather(*(store.mark_read("alice", general, s) for s in seqs[::-1]))
    assert any(moved)
    assert await store.read_marker("alice", general) == 50


async def test_unread_counts_take_others_messages_past_the_marker_and_their_mentions(
    store: Store,
) -> None:
    general = room_key("general")
    texts = [("bob", "hi"), ("bob", "@alice you?"), ("alice", "@alice me"), ("carol", "@alice.")]
    await store.append_many([room_draft("general", s, t) for s, t in texts])
    dm = dm_key("alice", "bob")
    await store.append_many([dm_draft("bob", "alice", "@alice dm"), dm_draft("alice", "bob", "x")])
    spans = [Span(general, 0, 4), Span(general, 2, 4), Span(dm, 0, 2), Span(general, 4, 4)]
    got = await store.unread_counts("alice", spans)
    assert got == [Unread(3, 2), Unread(1, 1), Unread(1, 1), Unread()]
    assert await store.unread_counts("bob", [Span(general, 0, 4)]) == [Unread(2, 0)]
    assert await store.unread_counts("alice", [Span(room_key("none"), 0, 3)]) == [Unread()]


async def test_changes_are_not_unread_and_a_deleted_message_stops_counting(store: Store) -> None:
    general = room_key("general")
    await store.append_many(
        [room_draft("general", "bob", "@alice one"), room_draft("general", "bob", "two")]
    )
    await store.append(change(EDIT, 2, "bob", "two, edited", "e-1"))
    await store.append(change(REACTION, 1, "bob", cid="r-1", emoji="👍"))
    assert await store.unread_counts("alice", [Span(general, 0, 4)]) == [Unread(2, 1)]
    await store.append(change(DELETE, 1, "bob", cid="d-1"))
    assert await store.unread_counts("alice", [Span(general, 0, 5)]) == [Unread(1, 0)]


async def test_unread_counts_look_at_no_more_than_the_cap(store: Store) -> None:
    general = room_key("general")
    total = UNREAD_CAP + 20
    drafts = [room_draft("general", "bob", "@alice" if i < 20 else "x") for i in range(total)]
    await store.append_many(drafts)
    (counted,) = await store.unread_counts("alice", [Span(general, 0, total)])
    # The 20 mentions are the oldest, past the window of the newest UNREAD_CAP.
    assert counted == Unread(UNREAD_CAP, 0)


class Heard:
    """A signal listener that records what it is told and wakes who waits for it."""

    def __init__(self) -> None:
        self.signals: list[Signal] = []
        self.changed = asyncio.Event()

    def __call__(self, signal: Signal) -> None:
        self.signals.append(signal)
        self.changed.set()

    async def wait(self, n: int) -> list[Signal]:
        async def until() -> None:
            while len(self.signals) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), WAIT)
        return self.signals


async def test_two_redis_stores_tell_each_other_typing_and_moved_markers(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    a, b = open_store(redis_server.url), open_store(redis_server.url)
    await a.open()
    await b.open()
    try:
        on_a, on_b = Heard(), Heard()
        a.set_signal_listener(on_a)
        b.set_signal_listener(on_b)
        general, dm = room_key("general"), dm_key("alice", "bob")
        await a.append_many([room_draft("general", "bob", "m1"), dm_draft("alice", "bob", "d")])
        a.relay_typing(general, "alice")
        assert await a.mark_read("bob", dm, 1)
        assert not await a.mark_read("bob", dm, 1)  # not moved: nothing told
        b.relay_typing(dm, "bob")
        # Typing notices and markers are written apart: either may come first.
        told = set(await on_b.wait(2))
        assert told == {Signal(TYPING, general, "alice"), Signal(READ, dm, "bob", 1)}
        assert await on_a.wait(1) == [Signal(TYPING, dm, "bob")]  # never its own
        assert await b.read_marker("bob", dm) == 1
    finally:
        await a.close()
        await b.close()


#: Texts on both sides of the mention rule, some of them tricky.
MENTION_TEXTS = [
    "@alice",
    "hi @alice",
    "thanks @ALICE.",
    "(@alice)",
    "é@alice",
    "@alicex then @alice",
    "ok @alice-",
    "@alicex",
    "@alice_2",
    "@alice.b",
    "@alice-b",
    "bob@alice",
    "@@alice",
    "x.@alice",
    "@ali",
    "alice",
]


async def test_every_store_counts_mentions_by_the_one_rule(store: Store) -> None:
    general = room_key("general")
    await store.append_many([room_draft("general", "bob", t) for t in MENTION_TEXTS])
    expected = sum(mentions(t, "alice") for t in MENTION_TEXTS)
    assert 0 < expected < len(MENTION_TEXTS)
    (counted,) = await store.unread_counts("alice", [Span(general, 0, len(MENTION_TEXTS))])
    assert counted == Unread(len(MENTION_TEXTS), expected)
    for i, text in enumerate(MENTION_TEXTS, start=1):  # one by one: which ones
        (one,) = await store.unread_counts("alice", [Span(general, i - 1, i)])
        assert one.mentions == mentions(text, "alice"), text
