"""A writer gathers a burst of presence into one write, and never holds anything
else back for it; join answers that come together leave together
(chatrpc.session.linger, without a network)."""

from __future__ import annotations

import asyncio

from chatrpc.model import StoredMessage
from chatrpc.session.linger import (
    JOIN_LINGER_S,
    LINGER_EVENTS,
    PRESENCE_INTERVAL_S,
    PRESENCE_LINGER_S,
    PRESENCE_MAX_INTERVAL_S,
    PresencePace,
    next_write,
)
from chatrpc.subscriber import End, EndReason, Joined, Presence, Replay, Session

WAIT = 10.0


def presence(user: str) -> Presence:
    return Presence("general", user, joined=True)


async def test_presence_pushed_during_the_wait_leaves_in_the_same_write() -> None:
    session = Session("alice")
    session.push(presence("u0"))

    async def more() -> None:
        for i in range(1, 5):
            await asyncio.sleep(0)  # each arrives on a later turn of the loop
            session.push(presence(f"u{i}"))

    pusher = asyncio.create_task(more())
    items = await asyncio.wait_for(next_write(session), WAIT)
    await pusher
    assert [p.user for p in items if isinstance(p, Presence)] == [f"u{i}" for i in range(5)]


async def test_a_message_ends_the_wait_at_once_and_keeps_its_place() -> None:
    session = Session("alice")
    session.push(presence("bob"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    writing = asyncio.create_task(next_write(session))
    await asyncio.sleep(0)
    message = StoredMessage("#general", 1, "bob", "hi", 1_000, room="general")
    session.push(message)
    items = await asyncio.wait_for(writing, WAIT)
    assert items == [presence("bob"), message]
    assert loop.time() - began < PRESENCE_LINGER_S


async def test_lone_presence_goes_out_after_the_linger() -> None:
    session = Session("alice")
    session.push(presence("bob"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    items = await asyncio.wait_for(next_write(session), WAIT)
    assert items == [presence("bob")]
    assert PRESENCE_LINGER_S * 0.9 <= loop.time() - began < WAIT


async def test_a_full_frame_of_presence_goes_without_waiting() -> None:
    session = Session("alice")
    for i in range(LINGER_EVENTS):
        session.push(presence(f"u{i}"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    items = await asyncio.wait_for(next_write(session), WAIT)
    assert len(items) == LINGER_EVENTS
    assert loop.time() - began < PRESENCE_LINGER_S


async def test_the_end_of_a_session_ends_the_wait() -> None:
    session = Session("alice")
    session.push(presence("bob"))
    writing = asyncio.create_task(next_write(session))
    await asyncio.sleep(0)
    session.end(EndReason.SHUTDOWN)
    items = await asyncio.wait_for(writing, WAIT)
    assert items[0] == presence("bob")
    assert isinstance(items[-1], End) and items[-1].reason is EndReason.SHUTDOWN


async def test_presence_after_a_presence_write_waits_for_the_pace_but_a_message_does_not() -> None:
    session = Session("alice")
    pace = PresencePace()
    loop = asyncio.get_running_loop()
    session.push(presence("u0"))
    began = loop.time()
    assert await asyncio.wait_for(next_write(session, pace), WAIT) == [presence("u0")]
    assert loop.time() - began < PRESENCE_INTERVAL_S  # the first goes after the linger
    session.push(presence("u1"))
    first_written = pace.last
    assert await asyncio.wait_for(next_write(session, pace), WAIT) == [presence("u1")]
    assert loop.time() - first_written >= PRESENCE_INTERVAL_S * 0.9
    session.push(presence("u2"))
    writing = asyncio.create_task(next_write(session, pace))
    await asyncio.sleep(0)
    message = StoredMessage("#general", 1, "bob", "hi", 1_000, room="general")
    before_message = loop.time()
    session.push(message)
    assert await asyncio.wait_for(writing, WAIT) == [presence("u2"), message]
    assert loop.time() - before_message < PRESENCE_LINGER_S


def test_the_pace_widens_while_presence_comes_in_bursts_and_falls_back_after() -> None:
    pace = PresencePace()
    assert pace.wait(100.0) == PRESENCE_LINGER_S  # the first in a while: the linger only
    waits = []
    for written in (100.05, 101.05, 103.05, 107.05, 111.05):  # bursts, each followed by more
        pace.wrote(written, 20)
        waits.append(round(pace.wait(written + 0.05), 6))
    assert waits == [0.95, 1.95, 3.95, 3.95, 3.95]  # 1 s, 2 s, then 4 s (the most)
    assert pace.interval == PRESENCE_MAX_INTERVAL_S
    assert pace.wait(pace.last + 10.0) == PRESENCE_LINGER_S  # quiet again
    assert pace.interval == PRESENCE_INTERVAL_S


def test_single_arrivals_in_quick_succession_keep_the_shortest_pace() -> None:
    """Someone joining, leaving and joining again is announced within half a second
    each time: one event a write is no burst."""
    pace = PresencePace()
    for written in (100.0, 100.5, 101.0, 101.5):
        pace.wrote(written, 1)
        assert round(pace.wait(written + 0.1), 6) == 0.4
        assert pace.interval == PRESENCE_INTERVAL_S


def answer(room: str) -> Replay:
    joined = Joined(f"#{room}", room, "", "e", 0, True, 0, ())
    return Replay(joined, [], 0)


async def test_join_answers_that_come_together_leave_in_one_write() -> None:
    session = Session("alice")
    session.push(answer("a"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    writing = asyncio.create_task(next_write(session))
    await asyncio.sleep(0)  # it took the first answer and waits for more
    session.push(answer("b"))
    await asyncio.sleep(0)
    session.push(answer("c"))
    items = await asyncio.wait_for(writing, WAIT)
    assert [i.room for i in items if isinstance(i, Joined)] == ["a", "b", "c"]
    assert loop.time() - began >= JOIN_LINGER_S * 0.9
    message = StoredMessage("#a", 1, "bob", "hi", 1_000, room="a")
    session.push(message)
    assert await asyncio.wait_for(next_write(session), WAIT) == [message]


async def test_a_join_answer_followed_by_its_replay_is_not_held_back() -> None:
    session = Session("alice")
    replayed = StoredMessage("#a", 1, "bob", "hi", 1_000, room="a")
    joined = Joined("#a", "a", "", "e", 1, True, 1, ())
    session.push(Replay(joined, [replayed], 0))
    writing = asyncio.create_task(next_write(session))
    await asyncio.sleep(0)
    session.push(answer("b"))
    # It ends with a message: written at once, without the next answer.
    assert await asyncio.wait_for(writing, WAIT) == [joined, replayed]
