"""What a join's acknowledgement reads (``Store.resume_window``) and what a new
session reads (``Store.greeting``), on every store
(memory, SQLite, and Redis on a real redis-server).

SQLite answers the reads of the window in one step (in place, or on a reader
thread for a long replay); the other stores make one call per read (the base
class's driver). Either way the window must be what the reads one by one give,
for every kind of resume point.
"""

from __future__ import annotations

import pytest

from chatrpc import replay
from chatrpc.model import REACTION, dm_key, room_key
from chatrpc.store import Store
from chatrpc.store.sqlite.messages import IN_PLACE_ROWS

from . import test_store as contract
from .test_store import dm_draft, room_draft
from .test_store_changes import change

make_store = contract.make_store
store = contract.store

MAX_REPLAY = 5


async def one_by_one(
    store: Store, conv: str, after_seq: int | None, epoch: str, readers: list[str]
) -> replay.Window:
    """The window from the store's reads made one call each (the base driver)."""
    return await Store.resume_window(store, conv, after_seq, epoch, MAX_REPLAY, readers)


@pytest.mark.parametrize(
    ("after_seq", "epoch", "replayed", "complete"),
    [
        (None, "", [], False),  # live only
        (0, "", None, False),  # from the start: more than a replay, so the newest 5
        (5, "", [6, 7, 8, 9, 10], True),  # a gap of exactly a replay
        (9, "", [10], True),
        (10, "", [], True),  # nothing missed
        (3, "", [6, 7, 8, 9, 10], False),  # a gap past a replay: its newest part
        (11, "", None, False),  # ahead of this history: from the start
        (8, "another history", None, False),
    ],
)
async def test_a_window_is_what_its_reads_give_one_by_one(
    store: Store,
    after_seq: int | None,
    epoch: str,
    replayed: list[int] | None,
    complete: bool,
) -> None:
    general = room_key("general")
    stored = await store.append_many([room_draft("general", "bob", f"m{i}") for i in range(9)])
    await store.append(change(REACTION, stored[4][0].seq, emoji="👍"))  # seq 10; state on seq 5
    await store.mark_read("alice", general, 4)
    window = await store.resume_window(general, after_seq, epoch, MAX_REPLAY, ["alice", "carol"])
    assert window == await one_by_one(store, general, after_seq, epoch, ["alice", "carol"])
    assert window.last_seq == 10
    assert window.markers == [4, 0]
    assert window.complete is complete
    seqs = [m.seq for m in window.messages]
    assert seqs == (replayed if replayed is not None else [6, 7, 8, 9, 10])
    other_history = after_seq is not None and (after_seq > 10 or bool(epoch))
    assert window.floor == (10 if after_seq is None else 0 if other_history else after_seq)
    if 5 in seqs:
        assert window.messages[seqs.index(5)].reactions == (("👍", ("alice",)),)


async def test_a_window_of_a_dm_reads_both_markers_and_of_an_unknown_conversation_nothing(
    store: Store,
) -> None:
    dm = dm_key("alice", "bob")
    await store.append_many([dm_draft("alice", "bob", f"d{i}") for i in range(3)])
    await store.mark_read("bob", dm, 2)
    window = await store.resume_window(dm, 1, "", MAX_REPLAY, ["alice", "bob"])
    assert window == await one_by_one(store, dm, 1, "", ["alice", "bob"])
    assert ([m.seq for m in window.messages], window.markers) == ([2, 3], [0, 2])
    assert window.complete
    empty = await store.resume_window(room_key("nowhere"), 0, "", MAX_REPLAY, ["alice"])
    assert (empty.last_seq, empty.messages, empty.complete, empty.markers) == (0, [], True, [0])


async def test_a_greeting_is_the_blocks_and_invitations_read_one_by_one(store: Store) -> None:
    assert await store.greeting("alice") == ([], [])
    await store.block("alice", "mallory")
    await store.block("alice", "eve")
    await store.block("bob", "carol")  # someone else's
    await store.invite("secret", "alice", "bob", "come in")
    await store.invite("attic", "alice", "carol", "")
    await store.invite("secret", "dave", "bob", "")
    greeting = await store.greeting("alice")
    assert greeting == (await store.blocked("alice"), await store.invitations("alice"))
    assert greeting == (
        ["eve", "mallory"],
        [("attic", "carol", ""), ("secret", "bob", "come in")],
    )


async def test_a_replay_longer_than_sqlite_reads_in_place_is_the_same_window(store: Store) -> None:
    general = room_key("general")
    big = IN_PLACE_ROWS + 50
    await store.append_many([room_draft("general", "bob", f"m{i}") for i in range(big + 10)])
    # A gap of `big` (read by a reader thread on SQLite), the newest `big` of a
    # longer gap (likewise), and a short gap (read in place).
    for after_seq, count in ((10, big), (0, big), (big + 5, 5)):
        window = await store.resume_window(general, after_seq, "", big, ["alice"])
        assert window == await Store.resume_window(store, general, after_seq, "", big, ["alice"])
        assert len(window.messages) == count


def test_a_driver_stops_before_a_large_page_and_asks_again_for_a_read_that_failed() -> None:
    asked: list[replay.Read] = []
    failures = [RuntimeError("the database is busy")]

    def answer(read: replay.Read) -> replay.Answer:
        asked.append(read)
        if isinstance(read, replay.LastSeq):
            return 300
        if isinstance(read, replay.Page):
            if failures:
                raise failures.pop()
            return []
        return 7

    reads = replay.Driver(replay.window(100, "", "epoch", 500, ["alice"]))
    assert reads.run(answer, max_rows=100) is False  # 200 messages to replay: not here
    assert asked == [replay.LastSeq()] and reads.result is None
    with pytest.raises(RuntimeError):
        reads.run(answer)
    assert reads.run(answer) is True
    page = replay.Page(100, 500, False)
    assert asked == [replay.LastSeq(), page, page, replay.Marker("alice")]
    assert reads.result == replay.Window(300, [], 100, False, [7])


def test_a_driver_reads_no_page_when_nothing_was_missed() -> None:
    asked: list[replay.Read] = []

    def answer(read: replay.Read) -> replay.Answer:
        asked.append(read)
        return 300 if isinstance(read, replay.LastSeq) else 0

    reads = replay.Driver(replay.window(300, "epoch", "epoch", 500, ["alice"]))
    assert reads.run(answer, max_rows=100) is True
    assert asked == [replay.LastSeq(), replay.Marker("alice")]
    assert reads.result == replay.Window(300, [], 300, True, [0])
