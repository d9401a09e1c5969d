"""chatrpc.subscriber.Session without a network: the bound and the delivery rules.

A session's ``next_batch`` waits while nothing deliverable is queued, so the
tests never call it on a queue that might filter down to nothing: ``drain``
first pushes a marker (a Notice, which always passes) and takes everything up
to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from chatrpc.model import StoredMessage, dm_key
from chatrpc.subscriber import (
    Ack,
    Acked,
    End,
    EndReason,
    Joined,
    Left,
    Notice,
    Outgoing,
    Presence,
    Replay,
    Session,
)

#: How long a test waits for something it expects before failing.
WAIT = 10.0

ROOM = "#general"
DM = dm_key("alice", "bob")
MARK = "drain-marker"


def msg(conv: str, seq: int, sender: str = "bob") -> StoredMessage:
    if conv.startswith("#"):
        return StoredMessage(conv, seq, sender, f"{conv} {seq}", 1_000 + seq, room=conv[1:])
    to_user = "alice" if sender == "bob" else "bob"
    return StoredMessage(conv, seq, sender, f"{conv} {seq}", 1_000 + seq, to_user=to_user)


def joined(conv: str, last_seq: int, replayed: int = 0, complete: bool = True) -> Joined:
    room = conv[1:] if conv.startswith("#") else ""
    with_user = "" if room else "bob"
    return Joined(conv, room, with_user, "epoch-1", last_seq, complete, replayed, ())


def replay(conv: str, after_seq: int, last_seq: int) -> Replay:
    """The join acknowledgement of ``conv`` replaying ``after_seq+1 .. last_seq``."""
    messages = [msg(conv, s) for s in range(after_seq + 1, last_seq + 1)]
    return Replay(joined(conv, last_seq, len(messages)), messages, after_seq)


async def drain(session: Session) -> list[Outgoing]:
    """Everything deliverable that is queued now, without waiting for more."""
    marker = Notice("MARK", MARK)
    assert session.push(marker)
    out: list[Outgoing] = []
    while marker not in out:
        out.extend(await asyncio.wait_for(session.next_batch(), WAIT))
    out.remove(marker)
    return out


def seqs(items: Sequence[Outgoing], conv: str) -> list[int]:
    return [i.seq for i in items if isinstance(i, StoredMessage) and i.conv == conv]


def kinds(items: Sequence[Outgoing]) -> list[str]:
    out = []
    for i in items:
        if isinstance(i, StoredMessage):
            out.append(f"{i.conv}:{i.seq}")
        else:
            out.append(type(i).__name__)
    return out


# -- the queue --------------------------------------------------------------------------


async def test_pushed_items_come_out_of_next_batch_in_order() -> None:
    session = Session("alice")
    items: list[StoredMessage | Presence | Left | Notice] = [
        msg(ROOM, 1),
        Presence("general", "carol", joined=True),
        msg(DM, 1),
        msg(ROOM, 2),
        Left("general"),
        Notice("INVALID_ARGUMENT", "bad", "c-1"),
    ]
    for item in items:
        assert session.push(item)
    assert await asyncio.wait_for(session.next_batch(), WAIT) == items


async def test_next_batch_waits_for_the_next_push() -> None:
    session = Session("alice")
    waiting = asyncio.ensure_future(session.next_batch())
    await asyncio.sleep(0)
    assert not waiting.done()
    session.push(msg(ROOM, 1))
    assert await asyncio.wait_for(waiting, WAIT) == [msg(ROOM, 1)]


async def test_next_batch_keeps_waiting_while_everything_queued_is_held_back() -> None:
    session = Session("alice")
    session.hold(ROOM)
    session.push(msg(ROOM, 1))
    waiting = asyncio.ensure_future(session.next_batch())
    await asyncio.sleep(0)
    assert not waiting.done()
    session.push(replay(ROOM, 0, 0))
    assert kinds(await asyncio.wait_for(waiting, WAIT)) == ["Joined", f"{ROOM}:1"]


async def test_a_full_queue_takes_exactly_max_queue_items() -> None:
    session = Session("alice", max_queue=5)
    for s in range(1, 6):
        assert session.push(msg(ROOM, s))
    assert not session.overflowed
    assert seqs(await asyncio.wait_for(session.next_batch(), WAIT), ROOM) == [1, 2, 3, 4, 5]
    # Draining makes room again.
    for s in range(6, 11):
        assert session.push(msg(ROOM, s))
    assert not session.overflowed


async def test_one_item_over_the_bound_ends_the_session_as_a_slow_consumer() -> None:
    session = Session("alice", max_queue=5)
    for s in range(1, 6):
        assert session.push(msg(ROOM, s))
    assert not session.push(msg(ROOM, 6))
    assert session.overflowed
    assert session.dropped == 6
    assert await asyncio.wait_for(session.next_batch(), WAIT) == [End(EndReason.SLOW_CONSUMER)]
    assert not session.push(msg(ROOM, 7))
    assert not session.push(Presence("general", "carol", joined=False))
    assert session.dropped == 8
    assert await asyncio.wait_for(session.next_batch(), WAIT) == [End(EndReason.SLOW_CONSUMER)]


async def test_an_overflow_wakes_a_waiting_writer() -> None:
    session = Session("alice", max_queue=0)
    waiting = asyncio.ensure_future(session.next_batch())
    await asyncio.sleep(0)
    assert not session.push(msg(ROOM, 1))
    assert await asyncio.wait_for(waiting, WAIT) == [End(EndReason.SLOW_CONSUMER)]


async def test_end_bypasses_the_bound_and_comes_after_what_is_queued() -> None:
    session = Session("alice", max_queue=3)
    for s in range(1, 4):
        assert session.push(msg(ROOM, s))
    session.end(EndReason.SHUTDOWN)
    assert not session.overflowed
    assert await asyncio.wait_for(session.next_batch(), WAIT) == [
        msg(ROOM, 1),
        msg(ROOM, 2),
        msg(ROOM, 3),
        End(EndReason.SHUTDOWN),
    ]


async def test_nothing_is_queued_after_end_and_a_second_end_is_ignored() -> None:
    session = Session("alice")
    session.push(msg(ROOM, 1))
    session.end(EndReason.DONE)
    session.end(EndReason.SHUTDOWN)
    assert not session.push(msg(ROOM, 2))
    assert await asyncio.wait_for(session.next_batch(), WAIT) == [
        msg(ROOM, 1),
        End(EndReason.DONE),
    ]


async def test_end_wakes_a_waiting_writer() -> None:
    session = Session("alice")
    waiting = asyncio.ensure_future(session.next_batch())
    await asyncio.sleep(0)
    session.end(EndReason.SHUTDOWN)
    assert await asyncio.wait_for(waiting, WAIT) == [End(EndReason.SHUTDOWN)]


# -- delivery rules ------------------------------------------------------------------------


async def test_a_message_pushed_twice_is_delivered_once() -> None:
    session = Session("alice")
    for s in (1, 2, 2, 1, 3):
        session.push(msg(ROOM, s))
    session.push(msg(DM, 2))
    session.push(msg(DM, 2))
    out = await drain(session)
    assert seqs(out, ROOM) == [1, 2, 3]
    assert seqs(out, DM) == [2]
    session.push(msg(ROOM, 3))
    session.push(msg(ROOM, 2))
    session.push(msg(ROOM, 4))
    assert seqs(await drain(session), ROOM) == [4]


async def test_a_retry_of_a_delivered_message_is_acked_not_repeated() -> None:
    session = Session("alice")
    session.push(msg(ROOM, 1, sender="alice"))
    assert seqs(await drain(session), ROOM) == [1]
    session.push(Ack(msg(ROOM, 1, sender="alice")))
    session.push(Ack(msg(ROOM, 1, sender="alice")))
    session.push(msg(ROOM, 2, sender="alice"))
    out = await drain(session)
    assert kinds(out) == ["Acked", "Acked", f"{ROOM}:2"]
    assert out[0] == Acked(msg(ROOM, 1, sender="alice"))
    assert session.cursors() == {ROOM: 2}


async def test_a_retry_whose_original_is_next_here_is_delivered_as_the_message() -> None:
    session = Session("alice")
    session.push(msg(ROOM, 1))
    session.push(Ack(msg(ROOM, 2, sender="alice")))
    # The live copy of the original comes after: it is not delivered twice.
    session.push(msg(ROOM, 2, sender="alice"))
    session.push(msg(ROOM, 3))
    assert kinds(await drain(session)) == [f"{ROOM}:1", f"{ROOM}:2", f"{ROOM}:3"]


async def test_a_retry_in_a_conversation_not_delivered_here_yet_is_delivered_at_once() -> None:
    session = Session("alice")
    session.push(Ack(msg(DM, 5, sender="alice")))
    session.push(msg(DM, 5, sender="alice"))
    session.push(msg(DM, 6))
    assert kinds(await drain(session)) == [f"{DM}:5", f"{DM}:6"]


async def test_a_retry_ahead_of_what_was_delivered_waits_for_its_turn() -> None:
    session = Session("alice")
    session.push(msg(ROOM, 1))
    # Answered before fan-out brought 2 and 3 (another server's copy comes late).
    session.push(Ack(msg(ROOM, 3, sender="alice")))
    session.push(Ack(msg(ROOM, 4, sender="alice")))
    assert kinds(await drain(session)) == [f"{ROOM}:1"]
    session.push(msg(ROOM, 2))
    assert kinds(await drain(session)) == [f"{ROOM}:2", f"{ROOM}:3", f"{ROOM}:4"]
    for s in (3, 4, 5):
        session.push(msg(ROOM, s))
    assert kinds(await drain(session)) == [f"{ROOM}:5"]


async def test_a_waiting_retry_is_answered_by_its_live_copy_once() -> None:
    session = Session("alice")
    session.push(msg(ROOM, 1))
    session.push(Ack(msg(ROOM, 3, sender="alice")))
    session.push(msg(ROOM, 3, sender="alice"))  # a jump: 2 never comes here
    session.push(msg(ROOM, 4))
    assert kinds(await drain(session)) == [f"{ROOM}:1", f"{ROOM}:3", f"{ROOM}:4"]


async def test_a_waiting_retry_is_settled_when_its_room_is_left() -> None:
    session = Session("alice")
    session.push(msg(ROOM, 1))
    session.push(Ack(msg(ROOM, 3, sender="alice")))
    assert kinds(await drain(session)) == [f"{ROOM}:1"]
    session.forget(ROOM)
    session.push(Left("general"))
    assert kinds(await drain(session)) == ["Acked", "Left"]
    assert session.cursors() == {}


async def test_a_retry_answered_after_its_room_was_left_is_acked_and_starts_nothing() -> None:
    session = Session("alice")
    session.push(Ack(msg(ROOM, 3, sender="alice")))
    assert kinds(await drain(session)) == ["Acked"]
    assert session.cursors() == {}


async def test_a_retry_during_a_join_is_answered_after_the_replay_in_order() -> None:
    session = Session("alice")
    session.hold(ROOM)
    session.push(Ack(msg(ROOM, 2, sender="alice")))  # replayed below: acked after it
    session.push(Ack(msg(ROOM, 5, sender="alice")))  # past the replay: in its place
    session.push(msg(ROOM, 4))
    session.push(replay(ROOM, after_seq=0, last_seq=3))
    session.push(msg(ROOM, 5, sender="alice"))
    session.push(msg(ROOM, 6))
    out = await drain(session)
    assert kinds(out) == [
        "Joined",
        f"{ROOM}:1",
        f"{ROOM}:2",
        f"{ROOM}:3",
        "Acked",
        f"{ROOM}:4",
        f"{ROOM}:5",
        f"{ROOM}:6",
    ]


async def test_a_retry_older_than_a_join_fits_the_order_until_something_newer_went_out() -> None:
    session = Session("alice")
    session.hold(ROOM)
    # A join without a resume point: live starts after 10, nothing delivered yet.
    session.push(replay(ROOM, after_seq=10, last_seq=10))
    session.push(Ack(msg(ROOM, 7, sender="alice")))
    session.push(Ack(msg(ROOM, 9, sender="alice")))
    session.push(Ack(msg(ROOM, 8, sender="alice")))  # 9 went out: 8 cannot
    session.push(msg(ROOM, 11))
    session.push(Ack(msg(ROOM, 10, sender="alice")))
    out = await drain(session)
    assert kinds(out) == ["Joined", f"{ROOM}:7", f"{ROOM}:9", "Acked", f"{ROOM}:11", "Acked"]
    assert [i.message.seq for i in out if isinstance(i, Acked)] == [8, 10]
    assert session.cursors() == {ROOM: 11}


async def test_a_held_room_delivers_the_ack_then_the_replay_then_live_messages_past_it() -> None:
    session = Session("alice")
    session.hold(ROOM)
    # Live messages 4..6 arrive while the history (after 2, up to 5) is being read.
    for s in (4, 5, 6):
        session.push(msg(ROOM, s))
    session.push(msg(DM, 1))  # other conversations are not held
    assert kinds(await drain(session)) == [f"{DM}:1"]
    session.push(replay(ROOM, after_seq=2, last_seq=5))
    session.push(msg(ROOM, 7))
    out = await drain(session)
    assert kinds(out) == ["Joined", f"{ROOM}:3", f"{ROOM}:4", f"{ROOM}:5", f"{ROOM}:6", f"{ROOM}:7"]
    assert out[0] == joined(ROOM, 5, replayed=3)
    assert session.cursors() == {ROOM: 7, DM: 1}


async def test_live_messages_pushed_after_the_replay_but_already_replayed_are_dropped() -> None:
    session = Session("alice")
    session.hold(ROOM)
    session.push(replay(ROOM, after_seq=0, last_seq=3))
    # The store notified 2 and 3 after the history read already returned them.
    for s in (2, 3, 4):
        session.push(msg(ROOM, s))
    assert kinds(await drain(session)) == [
        "Joined",
        f"{ROOM}:1",
        f"{ROOM}:2",
        f"{ROOM}:3",
        f"{ROOM}:4",
    ]


async def test_a_fresh_join_drops_held_messages_up_to_the_joins_last_seq() -> None:
    session = Session("alice")
    session.hold(ROOM)
    for s in (9, 10, 11, 12):
        session.push(msg(ROOM, s))
    # A join without a resume point replays nothing and starts after last_seq 10.
    session.push(replay(ROOM, after_seq=10, last_seq=10))
    out = await drain(session)
    assert kinds(out) == ["Joined", f"{ROOM}:11", f"{ROOM}:12"]
    assert session.cursors() == {ROOM: 12}
    session.push(msg(ROOM, 12))
    session.push(msg(ROOM, 13))
    assert seqs(await drain(session), ROOM) == [13]


async def test_a_fresh_join_of_a_quiet_room_sets_the_cursor_to_its_last_seq() -> None:
    session = Session("alice")
    session.hold(ROOM)
    session.push(replay(ROOM, after_seq=4, last_seq=4))
    assert kinds(await drain(session)) == ["Joined"]
    assert session.cursors() == {ROOM: 4}
    session.push(msg(ROOM, 4))
    session.push(msg(ROOM, 5))
    assert seqs(await drain(session), ROOM) == [5]


async def test_a_dm_replay_never_goes_below_what_was_delivered_live_and_says_so() -> None:
    session = Session("alice")
    # Bob's DMs 4 and 5 arrive live before alice resumes the conversation.
    session.push(msg(DM, 4))
    session.push(msg(DM, 5))
    assert seqs(await drain(session), DM) == [4, 5]
    session.hold(DM)
    session.push(msg(DM, 6))
    session.push(replay(DM, after_seq=1, last_seq=6))
    session.push(msg(DM, 7))
    out = await drain(session)
    # 2 and 3 would go backwards: left to History, and the replay is not complete.
    assert kinds(out) == ["Joined", f"{DM}:6", f"{DM}:7"]
    assert out[0] == joined(DM, 6, replayed=1, complete=False)
    assert session.cursors() == {DM: 7}
    # A resume that only overlaps what was delivered is complete, and repeats nothing.
    session.hold(DM)
    session.push(replay(DM, after_seq=4, last_seq=7))
    out = await drain(session)
    assert kinds(out) == ["Joined"]
    assert out[0] == joined(DM, 7, replayed=0, complete=True)
    session.hold(DM)
    session.push(replay(DM, after_seq=0, last_seq=7))
    out = await drain(session)
    assert out == [joined(DM, 7, replayed=0, complete=False)]
    assert session.cursors() == {DM: 7}


async def test_release_after_a_failed_replay_lets_held_messages_flow_in_order() -> None:
    session = Session("alice")
    session.hold(ROOM)
    for s in (1, 2, 3):
        session.push(msg(ROOM, s))
    assert await drain(session) == []
    session.release(ROOM)
    session.push(msg(ROOM, 4))
    assert seqs(await drain(session), ROOM) == [1, 2, 3, 4]
    assert session.cursors() == {ROOM: 4}


async def test_release_without_held_messages_just_ends_the_hold() -> None:
    session = Session("alice")
    session.hold(ROOM)
    session.release(ROOM)
    session.push(msg(ROOM, 1))
    assert seqs(await drain(session), ROOM) == [1]
    session.release("#never-held")
    session.push(msg(ROOM, 2))
    assert seqs(await drain(session), ROOM) == [2]


async def test_cursors_report_the_newest_seq_delivered_in_each_conversation() -> None:
    session = Session("alice")
    assert session.cursors() == {}
    for item in (msg(ROOM, 1), msg(ROOM, 2), msg(DM, 7), msg("#other", 3), msg(ROOM, 3)):
        session.push(item)
    await drain(session)
    assert session.cursors() == {ROOM: 3, DM: 7, "#other": 3}
    session.hold(ROOM)
    session.push(msg(ROOM, 4))
    await drain(session)
    assert session.cursors()[ROOM] == 3  # held back, so not delivered yet


async def test_forget_lets_a_conversation_start_again_after_leaving_it() -> None:
    session = Session("alice")
    session.push(msg(ROOM, 1))
    session.push(msg(ROOM, 2))
    await drain(session)
    session.forget(ROOM)
    assert session.cursors() == {}
    session.hold(ROOM)
    session.push(replay(ROOM, after_seq=0, last_seq=2))
    assert kinds(await drain(session)) == ["Joined", f"{ROOM}:1", f"{ROOM}:2"]


# -- properties ----------------------------------------------------------------------------


@st.composite
def join_scenarios(draw: st.DrawFn) -> tuple[int, int, int, int, int, list[int]]:
    """A room join racing with live messages.

    The session subscribes when the room's last seq is ``s``: live messages
    ``s+1 .. n`` follow. The history read sees last seq ``last`` (``s <= last``)
    and replays after the client's resume point ``k <= last``. The Replay is
    queued after ``at`` live messages (before or after those it also replays),
    and the writer takes batches at the ``cuts`` positions.
    """
    n = draw(st.integers(0, 30))
    last = draw(st.integers(0, n))
    s = draw(st.integers(0, last))
    k = draw(st.integers(0, last))
    at = draw(st.integers(0, n - s))
    cuts = draw(st.lists(st.integers(0, n - s + 1), max_size=6))
    return n, last, s, k, at, cuts


@settings(max_examples=300, deadline=None)
@given(join_scenarios())
def test_a_join_racing_with_live_messages_delivers_every_seq_past_the_resume_point_once(
    scenario: tuple[int, int, int, int, int, list[int]],
) -> None:
    n, last, s, k, at, cuts = scenario

    async def run() -> list[Outgoing]:
        session = Session("alice")
        session.hold(ROOM)
        pushes: list[StoredMessage | Replay] = [msg(ROOM, q) for q in range(s + 1, n + 1)]
        pushes.insert(at, replay(ROOM, after_seq=k, last_seq=last))
        out: list[Outgoing] = []
        for i, item in enumerate(pushes):
            if i in cuts:
                out.extend(await drain(session))
            assert session.push(item)
        out.extend(await drain(session))
        return out

    out = asyncio.run(run())
    delivered = seqs(out, ROOM)
    assert delivered == list(range(k + 1, n + 1))
    assert sum(isinstance(i, Joined) for i in out) == 1
    # Nothing of the room reaches the client before its join acknowledgement.
    first = next(i for i, item in enumerate(out) if isinstance(item, Joined))
    assert seqs(out[:first], ROOM) == []


@st.composite
def dm_scenarios(draw: st.DrawFn) -> tuple[int, int, int, int, int, int, list[int]]:
    """A DM resumed while its live messages already flow to the session.

    Live messages ``p .. n`` reach the session from the start; the resume holds
    the conversation after ``h`` of them, reads history up to ``last`` and
    replays after the client's resume point ``k``.
    """
    n = draw(st.integers(1, 25))
    p = draw(st.integers(1, n))
    live = n - p + 1
    h = draw(st.integers(0, live))
    # The history read happens after the hold, so it sees at least what was live then.
    last = draw(st.integers(min(n, p - 1 + h), n))
    k = draw(st.integers(0, last))
    at = draw(st.integers(h, live))
    cuts = draw(st.lists(st.integers(0, live + 1), max_size=6))
    return n, p, h, last, k, at, cuts


@settings(max_examples=300, deadline=None)
@given(dm_scenarios())
def test_a_dm_resume_racing_with_live_messages_delivers_each_seq_once(
    scenario: tuple[int, int, int, int, int, int, list[int]],
) -> None:
    n, p, h, last, k, at, cuts = scenario

    async def run() -> list[Outgoing]:
        session = Session("alice")
        steps: list[StoredMessage | Replay | str] = [msg(DM, q) for q in range(p, n + 1)]
        steps.insert(at, replay(DM, after_seq=k, last_seq=last))
        steps.insert(h, "hold")
        out: list[Outgoing] = []
        for i, step in enumerate(steps):
            if i in cuts:
                out.extend(await drain(session))
            if step == "hold":
                session.hold(DM)
            else:
                assert not isinstance(step, str)
                assert session.push(step)
        out.extend(await drain(session))
        return out

    out = asyncio.run(run())
    delivered = seqs(out, DM)
    # Strictly increasing: once each, never backwards.
    assert delivered == sorted(set(delivered)), delivered
    assert sum(isinstance(i, Joined) for i in out) == 1
    at_ack = next(i for i, item in enumerate(out) if isinstance(item, Joined))
    ack = out[at_ack]
    assert isinstance(ack, Joined)
    before, after = seqs(out[:at_ack], DM), seqs(out[at_ack:], DM)
    if before:
        # Live DMs came first: the replay goes on above them only, and what it
        # leaves out below them (if anything past the resume point) is not complete.
        # Everything past the resume point and what came live (live DMs always flow).
        assert after == list(range(after[0] if after else n + 1, n + 1))
        assert before[-1] < (after or [n + 1])[0] <= max(k, before[-1]) + 1
        assert ack.complete == (k + 1 >= before[0])
    else:
        assert delivered == list(range(k + 1, n + 1))
        assert ack.complete
    high = before[-1] if before else 0
    assert ack.replayed == len([q for q in range(k + 1, last + 1) if q > high])


@st.composite
def retry_scenarios(
    draw: st.DrawFn,
) -> tuple[int, int, int, int, int, list[tuple[int, int]], list[int]]:
    """A room join racing with live messages and with answers to retried sends.

    As :func:`join_scenarios` (live ``s+1 .. n``, history up to ``last``, resume
    after ``k``, the Replay queued after ``at`` live messages), plus retried
    sends of seqs ``1 .. n`` answered at any point (fan-out from another server
    can bring an original after the answer to its retry).
    """
    n = draw(st.integers(1, 20))
    last = draw(st.integers(0, n))
    s = draw(st.integers(0, last))
    k = draw(st.integers(0, last))
    at = draw(st.integers(0, n - s))
    retries = draw(st.lists(st.tuples(st.integers(1, n), st.integers(0, n - s + 1)), max_size=8))
    cuts = draw(st.lists(st.integers(0, n - s + 10), max_size=6))
    return n, last, s, k, at, retries, cuts


@settings(max_examples=300, deadline=None)
@given(retry_scenarios())
def test_retried_sends_never_repeat_a_message_or_send_a_seq_backwards(
    scenario: tuple[int, int, int, int, int, list[tuple[int, int]], list[int]],
) -> None:
    n, last, s, k, at, retries, cuts = scenario

    async def run() -> list[Outgoing]:
        session = Session("alice")
        session.hold(ROOM)
        pushes: list[StoredMessage | Replay | Ack] = [msg(ROOM, q) for q in range(s + 1, n + 1)]
        pushes.insert(at, replay(ROOM, after_seq=k, last_seq=last))
        for seq, where in sorted(retries, key=lambda r: -r[1]):
            pushes.insert(min(where, len(pushes)), Ack(msg(ROOM, seq)))
        out: list[Outgoing] = []
        for i, item in enumerate(pushes):
            if i in cuts:
                out.extend(await drain(session))
            assert session.push(item)
        out.extend(await drain(session))
        return out

    out = asyncio.run(run())
    delivered = seqs(out, ROOM)
    # Strictly increasing: each once, never backwards.
    assert delivered == sorted(set(delivered)), delivered
    # Everything past the resume point; below it, only originals of retries that
    # still fitted the order (nothing newer had gone out).
    retried = {seq for seq, _ in retries}
    assert [q for q in delivered if q > k] == list(range(k + 1, n + 1))
    assert {q for q in delivered if q <= k} <= retried
    acked = [i.message.seq for i in out if isinstance(i, Acked)]
    assert len(acked) <= len(retries)
    # Every retry is answered: its message went out, or an ack says it is settled.
    for seq in retried:
        assert seq in acked or seq in delivered, (seq, acked, delivered)
    # An ack only once the session is past its seq: the message could not come after it.
    newest = 0
    for item in out:
        if isinstance(item, StoredMessage):
            newest = item.seq
        elif isinstance(item, Acked):
            assert item.message.seq <= newest, kinds(out)
    # Nothing of the room, not even an ack, comes before the join's acknowledgement.
    first = next(i for i, item in enumerate(out) if isinstance(item, Joined))
    assert not [i for i in out[:first] if isinstance(i, (StoredMessage, Acked))]
