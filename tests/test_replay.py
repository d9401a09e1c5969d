"""Resume planning without a store: what a join with a resume point replays."""

from __future__ import annotations

from chatrpc import replay
from chatrpc.model import EDIT, MESSAGE, REACTION, StoredMessage


def msgs(first: int, last: int) -> list[StoredMessage]:
    return [StoredMessage("#r", s, "bob", f"m{s}", 0, room="r") for s in range(first, last + 1)]


def test_a_gap_within_the_replay_bound_is_read_from_the_resume_point() -> None:
    assert replay.plan(40, "e1", "e1", 100, 1000) == replay.Plan(40, True, 1000)
    assert replay.complete(40, 40, 100, msgs(41, 100))


def test_a_gap_past_the_bound_sends_only_its_newest_part_and_is_incomplete() -> None:
    plan = replay.plan(10, "e1", "e1", 5000, 1000)
    assert plan == replay.Plan(10, False, 1000)
    assert not replay.complete(10, plan.floor, 5000, msgs(4001, 5000))


def test_another_epoch_or_a_seq_ahead_of_history_replays_from_the_start() -> None:
    assert replay.plan(40, "old", "new", 100, 1000).floor == 0
    assert replay.plan(400, "e1", "e1", 100, 1000).floor == 0
    assert replay.plan(40, "", "e1", 100, 1000).floor == 40  # no epoch given: trusted
    # Even a full replay from 0 is not "complete": the client must drop what it had.
    assert not replay.complete(40, 0, 100, msgs(1, 100))


def test_a_resume_at_the_newest_seq_is_complete_with_nothing_to_replay() -> None:
    assert replay.plan(100, "e1", "e1", 100, 1000) == replay.Plan(100, True, 1000)
    assert replay.complete(100, 100, 100, [])
    assert not replay.complete(90, 90, 100, [])  # messages were expected


def test_a_replay_missing_its_first_messages_is_incomplete() -> None:
    # Retention removed 41..59: the client cannot have everything after 40.
    assert not replay.complete(40, 40, 100, msgs(60, 100))
    assert not replay.complete(40, 40, 100, msgs(41, 90))  # and short of the newest


def test_change_items_are_seqs_of_the_replay_like_messages() -> None:
    # Edits, reactions and deletes are stored items: a replay holds them in their
    # place, and one that left them out would have holes.
    items = msgs(41, 100)
    for m in items[1::3]:
        m.kind, m.target_seq = EDIT, 41
    for m in items[2::3]:
        m.kind, m.target_seq, m.emoji = REACTION, 41, "👍"
    assert replay.complete(40, 40, 100, items)
    assert not replay.complete(40, 40, 100, [m for m in items if m.kind == MESSAGE])
