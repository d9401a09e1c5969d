"""The store contract (chatrpc.store.base), run against every store.

Every test taking the ``store`` or ``make_store`` fixture runs once per store
(memory, SQLite and Redis on a real redis-server); the SQLite-only tests at the
end cover what only a file can show: durability across a reopen, WAL, migrations and group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from chatrpc.errors import ChatError, Code, StoreUnavailable
from chatrpc.model import Conversation, Draft, StoredMessage, dm_key, room_key
from chatrpc.store import QUOTA_WINDOW_MS, Account, RoomClaim, Store, StoreOptions, open_store
from chatrpc.store import sqlite as sqlite_store
from chatrpc.store.sqlite import MIGRATIONS, SQLiteStore

from .redis_fixture import RedisServer, free_port, redis_server_in

#: How long a test waits for something it expects before failing.
WAIT = 10.0

MakeStore = Callable[..., Awaitable[Store]]


def now_ms() -> int:
    return int(time.time() * 1000)


def room_draft(room: str, sender: str, text: str, cid: str = "") -> Draft:
    return Draft(room_key(room), sender, text, now_ms(), cid, room=room)


def dm_draft(sender: str, to_user: str, text: str, cid: str = "") -> Draft:
    return Draft(dm_key(sender, to_user), sender, text, now_ms(), cid, to_user=to_user)


class Recorder:
    """A store listener that records every notified message, in call order."""

    def __init__(self) -> None:
        self.calls: list[list[StoredMessage]] = []

    def __call__(self, messages: Sequence[StoredMessage]) -> None:
        self.calls.append(list(messages))

    @property
    def messages(self) -> list[StoredMessage]:
        return [m for call in self.calls for m in call]

    def seqs(self, conv: str) -> list[int]:
        return [m.seq for m in self.messages if m.conv == conv]

    def saw(self, msg: StoredMessage) -> bool:
        return any(m.conv == msg.conv and m.seq == msg.seq for m in self.messages)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Opens stores of one kind (with any options) and closes them all at the end.

    Redis stores of one test each get their own database of a flushed server.
    """
    opened: list[Store] = []
    redis: RedisServer | None = None
    if request.param == "redis":
        redis = request.getfixturevalue("redis_server")
        assert redis is not None
        redis.flush()

    async def make(options: StoreOptions | None = None) -> Store:
        if request.param == "memory":
            url = "memory://"
        elif redis is not None:
            url = redis.url_for(len(opened))
        else:
            url = f"sqlite://{tmp_path / f'chat-{len(opened)}.db'}"
        store = open_store(url, options)
        await store.open()
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


# -- sequence numbers ---------------------------------------------------------------------


async def test_seq_starts_at_1_in_every_conversation_and_grows_without_gap(store: Store) -> None:
    assert store.epoch
    got: dict[str, list[int]] = {}
    drafts = [
        room_draft("general", "alice", "r1"),
        dm_draft("alice", "bob", "d1"),
        room_draft("random", "bob", "x1"),
        room_draft("general", "bob", "r2"),
        dm_draft("bob", "alice", "d2"),
        room_draft("general", "alice", "r3"),
        dm_draft("alice", "carol", "e1"),
    ]
    for draft in drafts:
        msg, duplicate = await store.append(draft)
        assert not duplicate
        got.setdefault(msg.conv, []).append(msg.seq)
    assert got == {
        "#general": [1, 2, 3],
        "#random": [1],
        dm_key("alice", "bob"): [1, 2],
        dm_key("alice", "carol"): [1],
    }


async def test_append_returns_the_draft_with_its_seq(store: Store) -> None:
    draft = Draft("#general", "alice", "hello", 1_700_000_000_123, "c-1", room="general")
    msg, duplicate = await store.append(draft)
    assert not duplicate
    assert (msg.conv, msg.seq, msg.sender, msg.text) == ("#general", 1, "alice", "hello")
    assert (msg.sent_at_ms, msg.client_msg_id, msg.room, msg.to_user) == (
        1_700_000_000_123,
        "c-1",
        "general",
        "",
    )


async def test_last_seq_is_0_for_an_unknown_conversation_and_the_newest_seq_after(
    store: Store,
) -> None:
    assert await store.last_seq("#nowhere") == 0
    assert await store.last_seq(dm_key("alice", "bob")) == 0
    for i in range(4):
        await store.append(room_draft("general", "alice", f"m{i}"))
    await store.append(dm_draft("alice", "bob", "psst"))
    assert await store.last_seq("#general") == 4
    assert await store.last_seq(dm_key("bob", "alice")) == 1
    assert await store.last_seq("#nowhere") == 0


async def test_hundreds_of_concurrent_appends_get_gapless_seqs_in_submission_order(
    store: Store,
) -> None:
    convs = ["alpha", "beta", "gamma"]
    dms = [("alice", "bob"), ("carol", "alice")]
    drafts: list[Draft] = []
    for i in range(600):
        k = i % 5
        if k < 3:
            drafts.append(room_draft(convs[k], "alice", f"{convs[k]}-{i}"))
        else:
            a, b = dms[k - 3]
            drafts.append(dm_draft(a, b, f"{a}-{b}-{i}"))
    results = await asyncio.wait_for(asyncio.gather(*(store.append(d) for d in drafts)), WAIT)

    by_conv: dict[str, list[StoredMessage]] = {}
    for draft, (msg, duplicate) in zip(drafts, results, strict=True):
        assert not duplicate
        assert msg.conv == draft.conv and msg.text == draft.text
        by_conv.setdefault(msg.conv, []).append(msg)
    assert len(by_conv) == 5
    for conv, msgs in by_conv.items():
        # gather starts the appends in argument order: that is their submission order.
        assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1)), conv
        assert await store.last_seq(conv) == len(msgs)
        stored = await store.history(conv, limit=1000)
        assert [m.text for m in stored] == [m.text for m in msgs]


async def test_each_task_appending_in_turn_sees_its_own_messages_in_order(store: Store) -> None:
    async def writer(name: str) -> list[int]:
        seqs = []
        for i in range(40):
            msg, _ = await store.append(room_draft("busy", name, f"{name}-{i}"))
            seqs.append(msg.seq)
        return seqs

    names = [f"user{n}" for n in range(6)]
    per_task = await asyncio.wait_for(asyncio.gather(*(writer(n) for n in names)), WAIT)
    for seqs in per_task:
        assert seqs == sorted(seqs)
    assert sorted(s for seqs in per_task for s in seqs) == list(range(1, 241))
    stored = await store.history("#busy", limit=1000)
    assert [m.seq for m in stored] == list(range(1, 241))
    for name in names:
        assert [m.text for m in stored if m.sender == name] == [f"{name}-{i}" for i in range(40)]


# -- notification ---------------------------------------------------------------------------


async def test_the_listener_sees_each_new_message_once_in_seq_order_before_append_returns(
    store: Store,
) -> None:
    seen = Recorder()
    store.set_listener(seen)
    checked = 0

    async def send(draft: Draft) -> None:
        nonlocal checked
        msg, duplicate = await store.append(draft)
        assert not duplicate
        assert seen.saw(msg), f"append of {msg.conv}/{msg.seq} returned before the listener saw it"
        checked += 1

    drafts = [room_draft("general", "alice", f"g{i}") for i in range(150)]
    drafts += [dm_draft("alice", "bob", f"d{i}") for i in range(150)]
    drafts += [room_draft("other", "bob", f"o{i}") for i in range(150)]
    drafts = drafts[0::3] + drafts[1::3] + drafts[2::3]  # interleave the conversations
    await asyncio.wait_for(asyncio.gather(*(send(d) for d in drafts)), WAIT)

    assert checked == len(drafts)
    assert len(seen.messages) == len(drafts)
    for conv in ("#general", "#other", dm_key("alice", "bob")):
        assert seen.seqs(conv) == list(range(1, 151))


async def test_a_sequential_append_is_notified_before_it_returns(store: Store) -> None:
    seen = Recorder()
    store.set_listener(seen)
    for i in range(1, 6):
        msg, _ = await store.append(room_draft("general", "alice", f"m{i}"))
        assert seen.seqs("#general") == list(range(1, i + 1))
        assert seen.messages[-1].text == msg.text == f"m{i}"


# -- history ----------------------------------------------------------------------------------


async def test_history_pages_by_seq_range_oldest_first(store: Store) -> None:
    for i in range(1, 11):
        await store.append(room_draft("general", "alice", f"m{i}"))

    async def seqs(**kw: Any) -> list[int]:
        return [m.seq for m in await store.history("#general", **kw)]

    assert await seqs() == list(range(1, 11))
    assert await seqs(limit=3) == [1, 2, 3]
    assert await seqs(after_seq=3, limit=2) == [4, 5]
    assert await seqs(after_seq=7) == [8, 9, 10]
    assert await seqs(before_seq=4) == [1, 2, 3]
    assert await seqs(after_seq=2, before_seq=6) == [3, 4, 5]
    assert await seqs(after_seq=2, before_seq=9, limit=3) == [3, 4, 5]
    texts = [m.text for m in await store.history("#general", after_seq=8)]
    assert texts == ["m9", "m10"]


async def test_descending_history_gives_the_newest_page_first(store: Store) -> None:
    for i in range(1, 11):
        await store.append(room_draft("general", "alice", f"m{i}"))

    async def seqs(**kw: Any) -> list[int]:
        return [m.seq for m in await store.history("#general", descending=True, **kw)]

    assert await seqs() == list(range(10, 0, -1))
    assert await seqs(limit=3) == [10, 9, 8]
    assert await seqs(before_seq=8, limit=3) == [7, 6, 5]
    assert await seqs(before_seq=3, limit=3) == [2, 1]
    assert await seqs(after_seq=5, before_seq=9, limit=2) == [8, 7]
    assert await seqs(after_seq=8) == [10, 9]


async def test_history_is_empty_when_nothing_is_in_range(store: Store) -> None:
    assert await store.history("#nowhere") == []
    assert await store.history(dm_key("alice", "bob"), descending=True) == []
    for i in range(3):
        await store.append(room_draft("general", "alice", f"m{i}"))
    assert await store.history("#general", after_seq=3) == []
    assert await store.history("#general", after_seq=99) == []
    assert await store.history("#general", before_seq=1) == []
    assert await store.history("#general", after_seq=1, before_seq=2) == []
    assert await store.history("#general", limit=0) == []
    assert await store.history("#general", after_seq=3, descending=True) == []
    assert await store.history("#other") == []


async def test_dm_history_has_to_user_from_either_side_and_no_room(store: Store) -> None:
    await store.append(dm_draft("alice", "bob", "hi bob"))
    await store.append(dm_draft("bob", "alice", "hi alice"))
    await store.append(dm_draft("alice", "bob", "how are you"))
    for conv in (dm_key("alice", "bob"), dm_key("bob", "alice")):
        got = [(m.seq, m.sender, m.to_user, m.room, m.text) for m in await store.history(conv)]
        assert got == [
            (1, "alice", "bob", "", "hi bob"),
            (2, "bob", "alice", "", "hi alice"),
            (3, "alice", "bob", "", "how are you"),
        ]


async def test_room_history_has_the_room_and_no_to_user(store: Store) -> None:
    await store.append(room_draft("general", "alice", "hello", "c-1"))
    (msg,) = await store.history("#general")
    assert (msg.conv, msg.room, msg.to_user, msg.sender, msg.client_msg_id) == (
        "#general",
        "general",
        "",
        "alice",
        "c-1",
    )


# -- idempotency -----------------------------------------------------------------------------


async def test_a_repeated_client_msg_id_returns_the_original_without_notifying(
    store: Store,
) -> None:
    seen = Recorder()
    store.set_listener(seen)
    first, duplicate = await store.append(room_draft("general", "alice", "once", "c-1"))
    assert not duplicate and first.seq == 1
    await store.append(room_draft("general", "bob", "between"))
    again, duplicate = await store.append(room_draft("general", "alice", "once, retried", "c-1"))
    assert duplicate
    assert (again.conv, again.seq, again.sender, again.text, again.client_msg_id) == (
        "#general",
        1,
        "alice",
        "once",
        "c-1",
    )
    assert again.room == "general"
    assert [m.text for m in seen.messages] == ["once", "between"]
    assert [m.text for m in await store.history("#general")] == ["once", "between"]
    assert await store.last_seq("#general") == 2


async def test_a_repeated_dm_client_msg_id_returns_the_original_dm(store: Store) -> None:
    first, _ = await store.append(dm_draft("alice", "bob", "psst", "c-9"))
    again, duplicate = await store.append(dm_draft("alice", "bob", "psst", "c-9"))
    assert duplicate
    assert (again.conv, again.seq, again.to_user, again.room) == (first.conv, 1, "bob", "")
    assert await store.last_seq(first.conv) == 1


async def test_concurrent_retries_of_one_client_msg_id_store_it_once(store: Store) -> None:
    seen = Recorder()
    store.set_listener(seen)
    results = await asyncio.wait_for(
        asyncio.gather(
            *(store.append(room_draft("general", "alice", "same", "c-1")) for _ in range(20))
        ),
        WAIT,
    )
    assert [dup for _, dup in results].count(False) == 1
    assert {(m.seq, m.text) for m, _ in results} == {(1, "same")}
    assert seen.seqs("#general") == [1]
    assert await store.last_seq("#general") == 1


async def test_the_same_client_msg_id_from_another_sender_is_a_new_message(store: Store) -> None:
    seen = Recorder()
    store.set_listener(seen)
    a, dup_a = await store.append(room_draft("general", "alice", "from alice", "c-1"))
    b, dup_b = await store.append(room_draft("general", "bob", "from bob", "c-1"))
    assert not dup_a and not dup_b
    assert (a.seq, b.seq) == (1, 2)
    assert b.sender == "bob" and b.text == "from bob"
    assert seen.seqs("#general") == [1, 2]


async def test_an_empty_client_msg_id_never_deduplicates(store: Store) -> None:
    seen = Recorder()
    store.set_listener(seen)
    for _ in range(3):
        _, duplicate = await store.append(room_draft("general", "alice", "same text", ""))
        assert not duplicate
    assert seen.seqs("#general") == [1, 2, 3]
    assert await store.last_seq("#general") == 3


async def test_a_client_msg_id_past_the_idempotency_window_is_stored_anew(
    make_store: MakeStore,
) -> None:
    store = await make_store(StoreOptions(idempotency_window_s=0.05))
    seen = Recorder()
    store.set_listener(seen)
    first, _ = await store.append(room_draft("general", "alice", "one", "c-1"))
    again, duplicate = await store.append(room_draft("general", "alice", "one", "c-1"))
    assert duplicate and again.seq == first.seq == 1
    await asyncio.sleep(0.1)  # this test is about time itself: let the window pass
    later, duplicate = await store.append(room_draft("general", "alice", "one", "c-1"))
    assert not duplicate
    assert later.seq == 2
    assert seen.seqs("#general") == [1, 2]
    # The new message opens a new window.
    again, duplicate = await store.append(room_draft("general", "alice", "one", "c-1"))
    assert duplicate and again.seq == 2


async def test_a_retry_is_deduplicated_even_after_retention_dropped_the_original(
    make_store: MakeStore,
) -> None:
    store = await make_store(StoreOptions(retention_max_messages=1))
    seen = Recorder()
    store.set_listener(seen)
    first, _ = await store.append(room_draft("general", "alice", "original", "c-1"))
    assert first.seq == 1
    await store.append(room_draft("general", "bob", "pushes it out"))
    assert [m.seq for m in await store.history("#general")] == [2]
    again, duplicate = await store.append(room_draft("general", "alice", "original", "c-1"))
    assert duplicate, f"the retry was stored again as seq {again.seq}"
    assert (again.seq, again.text) == (1, "original")
    assert seen.seqs("#general") == [1, 2]
    assert await store.last_seq("#general") == 2


# -- rooms and memberships ----------------------------------------------------------------


async def test_ensure_room_creates_a_room_once_and_list_rooms_gives_them_by_name(
    store: Store,
) -> None:
    assert await store.list_rooms() == []
    await store.ensure_room("zeta")
    await store.ensure_room("alpha")
    await store.append(room_draft("alpha", "alice", "a1"))
    await store.append(room_draft("alpha", "alice", "a2"))
    await store.append(dm_draft("alice", "bob", "not a room"))
    await store.ensure_room("alpha")  # again: no change, no reset
    assert await store.list_rooms() == [Conversation("#alpha", 2), Conversation("#zeta", 0)]
    assert await store.last_seq("#alpha") == 2


async def test_list_directs_gives_each_dm_to_both_of_its_users(store: Store) -> None:
    await store.append(dm_draft("alice", "bob", "1"))
    await store.append(dm_draft("bob", "alice", "2"))
    await store.append(dm_draft("carol", "alice", "3"))
    await store.append(room_draft("general", "alice", "not a dm"))

    def keys(convs: list[Conversation]) -> dict[str, int]:
        return {c.key: c.last_seq for c in convs}

    ab, ac = dm_key("alice", "bob"), dm_key("alice", "carol")
    assert keys(await store.list_directs("alice")) == {ab: 2, ac: 1}
    assert keys(await store.list_directs("bob")) == {ab: 2}
    assert keys(await store.list_directs("carol")) == {ac: 1}
    assert await store.list_directs("dave") == []


async def test_a_dm_with_oneself_is_one_conversation_listed_once(store: Store) -> None:
    msg, _ = await store.append(dm_draft("alice", "alice", "note to self"))
    assert (msg.conv, msg.seq) == ("@alice@alice", 1)
    assert await store.list_directs("alice") == [Conversation("@alice@alice", 1)]
    (stored,) = await store.history("@alice@alice")
    assert (stored.sender, stored.to_user, stored.room) == ("alice", "alice", "")


async def test_membership_is_recorded_until_the_user_leaves(store: Store) -> None:
    await store.ensure_room("general")
    assert not await store.is_member("general", "alice")
    await store.add_member("general", "alice")
    await store.add_member("general", "alice")  # joining twice is harmless
    await store.add_member("general", "bob")
    assert await store.is_member("general", "alice")
    assert await store.is_member("general", "bob")
    assert not await store.is_member("general", "carol")
    assert not await store.is_member("other", "alice")
    await store.remove_member("general", "alice")
    assert not await store.is_member("general", "alice")
    assert await store.is_member("general", "bob")
    await store.remove_member("general", "alice")  # leaving twice is harmless
    await store.remove_member("general", "nobody")
    assert not await store.is_member("general", "alice")


# -- room quota, pages and pruning ----------------------------------------------------------


async def test_claim_room_counts_only_new_rooms_against_the_creators_daily_quota(
    store: Store,
) -> None:
    for room in ("a", "b", "c"):
        assert await store.claim_room(room, "alice", per_day=3) == RoomClaim(created=True)
    refused = await store.claim_room("d", "alice", per_day=3)
    assert not refused.created
    assert 0 < refused.retry_after_s <= QUOTA_WINDOW_MS / 1000
    # Nothing was created, an existing room costs nothing, others have their own quota.
    assert [c.key for c in await store.list_rooms()] == ["#a", "#b", "#c"]
    assert await store.claim_room("b", "alice", per_day=3) == RoomClaim()
    assert await store.claim_room("d", "bob", per_day=3) == RoomClaim(created=True)
    assert await store.claim_room("e", "alice", per_day=0) == RoomClaim(created=True)


async def test_concurrent_claims_never_create_more_rooms_than_the_quota(store: Store) -> None:
    claims = await asyncio.gather(
        *(store.claim_room(f"r{i}", "alice", per_day=5) for i in range(20))
    )
    assert sum(c.created for c in claims) == 5
    assert len(await store.list_rooms()) == 5


async def test_rooms_page_through_every_room_once_newest_activity_first(store: Store) -> None:
    names = [f"room{i:02d}" for i in range(23)]
    for name in names:
        await store.claim_room(name, "alice")
    await store.append(room_draft("room05", "alice", "now the most active"))
    seen: list[str] = []
    after: tuple[int, str] | None = None
    while True:
        page = await store.rooms_page(limit=4, after=after)
        assert len(page) <= 4
        seen.extend(e.name for e in page)
        if len(page) < 4:
            break
        after = (page[-1].active_ms, page[-1].name)
    assert sorted(seen) == names and len(seen) == len(names)
    assert seen[0] == "room05"
    keys = [(e.active_ms, e.name) for e in await store.rooms_page(limit=100)]
    assert keys == sorted(keys, reverse=True)
    assert {e.name: e.last_seq for e in await store.rooms_page(limit=100)}["room05"] == 1


async def test_a_room_gone_while_paging_does_not_stop_or_repeat_the_pages(store: Store) -> None:
    for i in range(10):
        await store.claim_room(f"r{i}", "alice")
    first = await store.rooms_page(limit=3)
    # The anchor room goes away (pruned): the next page still starts after its place.
    await store.prune_rooms(now_ms() + 1000, limit=100)
    rest = await store.rooms_page(limit=100, after=(first[-1].active_ms, first[-1].name))
    assert rest == []
    for i in range(10):
        await store.claim_room(f"s{i}", "alice")
    first = await store.rooms_page(limit=3)
    await store.claim_room(first[-1].name, "bob")  # the anchor moves to the front
    rest = await store.rooms_page(limit=100, after=(first[-1].active_ms, first[-1].name))
    assert {e.name for e in first} | {e.name for e in rest} == {f"s{i}" for i in range(10)}
    assert not {e.name for e in first[:2]} & {e.name for e in rest}


async def test_rooms_by_name_finds_a_prefix_a_page_at_a_time(store: Store) -> None:
    for name in ("dev", "dev-ops", "dev.ui", "devx", "design", "d", "ops"):
        await store.claim_room(name, "alice")
    first = await store.rooms_by_name("dev", limit=2)
    assert [e.name for e in first] == ["dev", "dev-ops"]
    rest = await store.rooms_by_name("dev", limit=10, after="dev-ops")
    assert [e.name for e in rest] == ["dev.ui", "devx"]
    assert await store.rooms_by_name("zzz", limit=10) == []
    assert [e.name for e in await store.rooms_by_name("d", limit=10)] == [
        "d",
        "design",
        "dev",
        "dev-ops",
        "dev.ui",
        "devx",
    ]


async def test_prune_removes_idle_rooms_without_members_or_messages_only(store: Store) -> None:
    for name in ("empty", "talked", "joined"):
        await store.claim_room(name, "alice")
    await store.append(room_draft("talked", "alice", "keeps the room"))
    await store.add_member("joined", "bob")
    gone, nxt = await store.prune_rooms(now_ms() + 1000, limit=100)
    assert "empty" in gone and nxt is None
    assert not {"talked", "joined"} & set(gone)
    listed = {c.key for c in await store.list_rooms()}
    assert {"#talked", "#joined"} <= listed and "#empty" not in listed
    assert [e.name for e in await store.rooms_by_name("empty", limit=10)] == []
    # Gone means free: claiming it creates it anew (and counts for the quota).
    assert await store.claim_room("empty", "carol") == RoomClaim(created=True)
    # Nothing is removed that was active since the cutoff.
    assert (await store.prune_rooms(now_ms() - 60_000, limit=100))[0] == []


async def test_prune_works_in_bounded_steps_that_reach_every_idle_room(store: Store) -> None:
    for i in range(12):
        await store.claim_room(f"r{i}", "alice")
        if i % 3 == 0:
            await store.append(room_draft(f"r{i}", "alice", "stays"))
    cutoff = now_ms() + 1000
    removed: list[str] = []
    start: int | None = 0
    steps = 0
    while start is not None:
        gone, start = await store.prune_rooms(cutoff, limit=2, from_ms=start)
        removed.extend(gone)
        steps += 1
        assert len(gone) <= 2 and steps < 50
    assert sorted(removed) == sorted(f"r{i}" for i in range(12) if i % 3)
    assert sorted(c.key for c in await store.list_rooms()) == ["#r0", "#r3", "#r6", "#r9"]


# -- registration tokens ---------------------------------------------------------------------


async def test_a_registration_token_is_good_for_its_uses_until_it_expires(store: Store) -> None:
    now = now_ms()
    await store.create_registration_token("a" * 64, uses=2, expires_ms=now + 60_000)
    await store.create_registration_token("b" * 64, uses=5, expires_ms=now + 60_000)
    assert await store.use_registration_token("a" * 64, now)
    assert await store.use_registration_token("a" * 64, now)
    assert not await store.use_registration_token("a" * 64, now)  # used up
    assert not await store.use_registration_token("c" * 64, now)  # unknown
    assert not await store.use_registration_token("b" * 64, now + 60_000)  # expired
    listed = await store.list_registration_tokens()
    assert [(t.id, t.uses_left) for t in listed] == [("a" * 12, 0), ("b" * 12, 5)]
    assert all(t.expires_ms == now + 60_000 and t.created_ms > 0 for t in listed)
    assert await store.revoke_registration_token("b" * 12)
    assert not await store.revoke_registration_token("b" * 12)
    assert not await store.use_registration_token("b" * 64, now)
    assert [t.id for t in await store.list_registration_tokens()] == ["a" * 12]


async def test_concurrent_uses_of_a_registration_token_never_exceed_its_uses(
    store: Store,
) -> None:
    await store.create_registration_token("d" * 64, uses=3, expires_ms=now_ms() + 60_000)
    uses = await asyncio.gather(
        *(store.use_registration_token("d" * 64, now_ms()) for _ in range(10))
    )
    assert sum(uses) == 3


# -- accounts ------------------------------------------------------------------------------


async def test_create_account_is_first_come_and_keeps_the_first_password(store: Store) -> None:
    assert await store.get_account("alice") is None
    assert await store.create_account("alice", "hash-1", "tok-1")
    assert not await store.create_account("alice", "hash-2", "tok-2")
    assert await store.get_account("alice") == Account("alice", "hash-1")
    assert await store.user_for_token("tok-1") == "alice"
    assert await store.user_for_token("tok-2") is None
    assert await store.create_account("bob", None, "tok-b")
    assert await store.get_account("bob") == Account("bob", None)
    assert await store.get_account("carol") is None


async def test_concurrent_claims_of_one_name_let_exactly_one_win(store: Store) -> None:
    results = await asyncio.wait_for(
        asyncio.gather(*(store.create_account("alice", f"h{i}", f"t{i}") for i in range(20))),
        WAIT,
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await store.get_account("alice") == Account("alice", f"h{winner}")
    owners = [await store.user_for_token(f"t{i}") for i in range(20)]
    assert owners == [("alice" if i == winner else None) for i in range(20)]


async def test_tokens_can_be_added_looked_up_and_revoked(store: Store) -> None:
    assert await store.user_for_token("unknown") is None
    await store.create_account("alice", None, "tok-1")
    await store.create_account("bob", None, "tok-b")
    await store.add_token("alice", "tok-2")
    await store.add_token("alice", "tok-3")
    for tok in ("tok-1", "tok-2", "tok-3"):
        assert await store.user_for_token(tok) == "alice"
    assert await store.revoke_tokens("alice") == 3
    for tok in ("tok-1", "tok-2", "tok-3"):
        assert await store.user_for_token(tok) is None
    assert await store.user_for_token("tok-b") == "bob"
    assert await store.revoke_tokens("alice") == 0
    assert await store.revoke_tokens("nobody") == 0
    assert await store.get_account("alice") == Account("alice", None)
    await store.add_token("alice", "tok-4")
    assert await store.user_for_token("tok-4") == "alice"


async def test_a_token_is_minted_only_while_its_proof_token_is_valid(store: Store) -> None:
    await store.create_account("alice", None, "tok-1")
    await store.create_account("bob", None, "tok-b")
    assert await store.mint_token("alice", "tok-2", proof_hash="tok-1")
    assert await store.user_for_token("tok-2") == "alice"
    # Another user's token, an unknown one, or an account that does not exist: no proof.
    assert not await store.mint_token("alice", "tok-x", proof_hash="tok-b")
    assert not await store.mint_token("alice", "tok-y", proof_hash="unknown")
    assert not await store.mint_token("nobody", "tok-z", proof_hash="tok-1")
    assert await store.revoke_tokens("alice") == 2
    assert not await store.mint_token("alice", "tok-3", proof_hash="tok-2")
    for tok in ("tok-x", "tok-y", "tok-z", "tok-3"):
        assert await store.user_for_token(tok) is None
    assert await store.user_for_token("tok-b") == "bob"


async def test_a_revoke_all_between_a_password_check_and_the_mint_refuses_the_mint(
    store: Store,
) -> None:
    await store.create_account("alice", "hash", "tok-1")
    assert await store.token_generation("alice") == 0
    assert await store.token_generation("nobody") == 0
    checked = await store.token_generation("alice")  # read before the password is checked
    assert await store.mint_token("alice", "tok-2", generation=checked)
    assert await store.revoke_tokens("alice") == 2
    assert await store.token_generation("alice") == checked + 1
    assert not await store.mint_token("alice", "tok-3", generation=checked)
    assert await store.user_for_token("tok-3") is None
    assert await store.mint_token("alice", "tok-4", generation=checked + 1)
    assert await store.user_for_token("tok-4") == "alice"
    # Revoking a free name creates no account.
    assert await store.revoke_tokens("nobody") == 0
    assert await store.get_account("nobody") is None
    assert await store.get_account("alice") == Account("alice", "hash")


async def test_mints_racing_a_revoke_all_leave_no_token_valid(store: Store) -> None:
    """Chains of mints, each proved by the previous token, racing revoke_tokens."""

    async def chain(user: str, n: int, minted: list[str], started: asyncio.Event) -> None:
        proof = f"{user}-0"
        for i in range(1, 200):
            token = f"{user}-{n}-{i}"
            if not await store.mint_token(user, token, proof_hash=proof):
                return
            minted.append(token)
            started.set()
            proof = token

    for trial in range(5):
        user = f"user{trial}"
        await store.create_account(user, None, f"{user}-0")
        minted: list[str] = []
        started = asyncio.Event()
        chains = [asyncio.create_task(chain(user, n, minted, started)) for n in range(4)]
        await asyncio.wait_for(started.wait(), WAIT)
        await store.revoke_tokens(user)
        await asyncio.wait_for(asyncio.gather(*chains), WAIT)
        assert minted
        assert [t for t in minted if await store.user_for_token(t) is not None] == []


async def test_a_password_can_be_set_or_replaced_on_an_existing_account_only(
    store: Store,
) -> None:
    await store.create_account("alice", None, "tok-1")
    await store.create_account("bob", "hash-b", "tok-b")
    assert await store.set_password("alice", "hash-a")
    assert await store.get_account("alice") == Account("alice", "hash-a")
    assert await store.set_password("alice", "hash-a2")
    assert await store.get_account("alice") == Account("alice", "hash-a2")
    assert await store.user_for_token("tok-1") == "alice", "tokens stay valid"
    assert await store.get_account("bob") == Account("bob", "hash-b")
    assert not await store.set_password("carol", "hash-c")
    assert await store.get_account("carol") is None


# -- retention ---------------------------------------------------------------------------------


async def test_retention_keeps_the_newest_messages_and_seq_numbering_goes_on(
    make_store: MakeStore,
) -> None:
    store = await make_store(StoreOptions(retention_max_messages=3))
    for i in range(1, 6):
        await store.append(room_draft("general", "alice", f"m{i}"))
    await store.append(room_draft("other", "alice", "o1"))
    assert [m.seq for m in await store.history("#general")] == [3, 4, 5]
    assert [m.seq for m in await store.history("#other")] == [1]
    assert await store.last_seq("#general") == 5
    msg, _ = await store.append(room_draft("general", "alice", "m6"))
    assert msg.seq == 6
    assert [m.text for m in await store.history("#general")] == ["m4", "m5", "m6"]
    assert [m.seq for m in await store.history("#general", descending=True, limit=2)] == [6, 5]
    assert await store.list_rooms() == [Conversation("#general", 6), Conversation("#other", 1)]


async def test_retention_by_age_drops_old_messages(make_store: MakeStore) -> None:
    store = await make_store(StoreOptions(retention_max_age_s=3600))
    old = Draft("#general", "alice", "old", now_ms() - 2 * 3600 * 1000, room="general")
    await store.append(old)
    msg, _ = await store.append(room_draft("general", "alice", "new"))
    assert msg.seq == 2
    assert [m.text for m in await store.history("#general")] == ["new"]


async def test_retention_by_age_counts_from_the_store_clock_not_the_sender_clock(
    make_store: MakeStore,
) -> None:
    store = await make_store(StoreOptions(retention_max_age_s=3600))
    hour = 3600 * 1000
    await store.append(Draft("#general", "alice", "old", now_ms() - 2 * hour, room="general"))
    # A sender whose clock is behind: its message is too old for the store too.
    behind = Draft("#general", "bob", "behind", now_ms() - 3 * hour // 2, room="general")
    msg, _ = await store.append(behind)
    assert msg.seq == 2
    assert await store.history("#general") == []
    assert await store.last_seq("#general") == 2


# -- the listener and closing ------------------------------------------------------------------


async def test_a_listener_that_raises_breaks_neither_the_append_nor_the_store(
    store: Store,
) -> None:
    calls: list[int] = []

    def failing(messages: Sequence[StoredMessage]) -> None:
        calls.extend(m.seq for m in messages)
        raise RuntimeError("the hub failed")

    store.set_listener(failing)
    first, duplicate = await store.append(room_draft("general", "alice", "one"))
    assert (first.seq, duplicate) == (1, False)
    [(second, _), (third, _)] = await store.append_many(
        [room_draft("general", "bob", "two"), dm_draft("bob", "alice", "three")]
    )
    assert (second.seq, third.seq) == (2, 1)
    assert calls == [1, 2, 1]
    assert [m.text for m in await store.history("#general")] == ["one", "two"]


async def test_a_closed_store_refuses_work_as_unavailable(store: Store) -> None:
    await store.append(room_draft("general", "alice", "before"))
    await store.close()
    await store.close()  # closing twice is harmless
    work: list[Callable[[], Awaitable[object]]] = [
        lambda: store.append(room_draft("general", "alice", "after")),
        lambda: store.append_many([room_draft("general", "alice", "after")]),
        lambda: store.history("#general"),
        lambda: store.last_seq("#general"),
        lambda: store.claim_room("new", "alice"),
        lambda: store.rooms_page(limit=10),
        lambda: store.add_member("general", "alice"),
        lambda: store.create_account("alice", None, "tok"),
        lambda: store.user_for_token("tok"),
        lambda: store.list_registration_tokens(),
    ]
    for call in work:
        with pytest.raises(StoreUnavailable, match="the store is closed"):
            await call()


async def test_a_task_cancelled_while_it_uses_the_store_stops(store: Store) -> None:
    """A session's task is cancelled when its client goes; whatever store call it
    is in, the cancellation must end it (the redis client alone drops about half
    of the cancels that land during a command)."""
    rng = random.Random(7)
    await store.append(room_draft("general", "alice", "hello"))
    for _ in range(30):

        async def reader() -> None:
            while True:
                await store.last_seq("#general")
                await store.history("#general", limit=10)
                await asyncio.sleep(0)

        task = asyncio.create_task(reader())
        await asyncio.sleep(rng.random() * 0.003)  # lands anywhere in a call
        task.cancel()
        await asyncio.wait({task}, timeout=WAIT)
        assert task.cancelled(), "the cancellation was lost: the task went on"


def test_a_redis_url_without_the_redis_package_asks_to_install_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # None makes the import fail
    monkeypatch.setitem(sys.modules, "chatrpc.store.redis", None)
    with pytest.raises(ChatError) as err:
        open_store("redis://127.0.0.1:6379/0")
    assert err.value.code is Code.INVALID_ARGUMENT
    assert "pip install 'chatrpc[redis]'" in err.value.message


async def test_a_redis_store_lists_the_rooms_an_older_release_made(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio as aioredis

    redis_server.flush()
    raw = aioredis.from_url(redis_server.url_for(0), decode_responses=True)
    try:
        # What a release before the rooms indexes left: the rooms set only.
        await raw.sadd("chatrpc:rooms", "#old", "#older")
    finally:
        await raw.aclose()
    store = open_store(redis_server.url_for(0))
    await store.open()
    try:
        assert sorted(e.name for e in await store.rooms_page(limit=10)) == ["old", "older"]
        assert [e.name for e in await store.rooms_by_name("old", limit=10)] == ["old", "older"]
    finally:
        await store.close()


async def test_a_redis_store_that_cannot_reach_redis_is_unavailable() -> None:
    store = open_store(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    await store.close()
    # What clients and logs see names the server, never its password.
    assert "s3cret" not in info.value.message and ":***@127.0.0.1" in info.value.message


async def test_a_redis_store_is_unavailable_while_redis_is_down_and_recovers(
    tmp_path: Path,
) -> None:
    with redis_server_in(tmp_path / "redis", durable=True) as redis:
        store = open_store(redis.url)
        await store.open()
        try:
            seen = Recorder()
            store.set_listener(seen)
            await store.append(room_draft("general", "alice", "before"))
            redis.kill()
            with pytest.raises(StoreUnavailable):
                await store.append(room_draft("general", "alice", "during", "c-1"))
            with pytest.raises(StoreUnavailable):
                await store.history("#general")
            redis.start()
            again, duplicate = await store.append(room_draft("general", "alice", "during", "c-1"))
            assert (again.seq, duplicate) == (2, False)
            assert [m.text for m in await store.history("#general")] == ["before", "during"]
            assert seen.seqs("#general") == [1, 2]
        finally:
            await store.close()


async def test_every_open_of_a_memory_store_is_a_new_epoch() -> None:
    a, b = open_store("memory://"), open_store("memory://")
    await a.open()
    await b.open()
    try:
        assert a.epoch and b.epoch and a.epoch != b.epoch
    finally:
        await a.close()
        await b.close()


# -- SQLite only ---------------------------------------------------------------------------


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to look at the file the store wrote."""
    return sqlite3.connect(path, isolation_level=None)


def pragma(path: Path, name: str) -> Any:
    conn = raw(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


async def test_sqlite_keeps_epoch_history_and_accounts_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    first = SQLiteStore(path)
    await first.open()
    try:
        epoch = first.epoch
        await first.ensure_room("general")
        await first.add_member("general", "alice")
        await first.create_account("alice", "hash-a", "tok-a")
        await first.create_account("bob", None, "tok-b")
        await first.add_token("alice", "tok-a2")
        for i in range(1, 4):
            await first.append(room_draft("general", "alice", f"m{i}", f"c-{i}"))
        await first.append(dm_draft("bob", "alice", "psst", "d-1"))
    finally:
        await first.close()

    second = SQLiteStore(path)
    await second.open()
    try:
        assert second.epoch == epoch
        assert [m.text for m in await second.history("#general")] == ["m1", "m2", "m3"]
        assert await second.last_seq("#general") == 3
        (dm,) = await second.history(dm_key("alice", "bob"))
        assert (dm.sender, dm.to_user, dm.text) == ("bob", "alice", "psst")
        assert await second.list_rooms() == [Conversation("#general", 3)]
        assert await second.list_directs("alice") == [Conversation(dm_key("alice", "bob"), 1)]
        assert await second.is_member("general", "alice")
        assert await second.get_account("alice") == Account("alice", "hash-a")
        assert await second.user_for_token("tok-a2") == "alice"
        assert await second.user_for_token("tok-b") == "bob"
        assert not await second.create_account("alice", "other", "tok-x")
        # The idempotency window survives the restart too.
        again, duplicate = await second.append(room_draft("general", "alice", "m2", "c-2"))
        assert duplicate and again.seq == 2
        msg, duplicate = await second.append(room_draft("general", "alice", "m4"))
        assert not duplicate and msg.seq == 4
    finally:
        await second.close()


async def test_a_new_sqlite_file_gets_a_new_epoch(tmp_path: Path) -> None:
    epochs = []
    for name in ("a.db", "b.db"):
        store = SQLiteStore(tmp_path / name)
        await store.open()
        try:
            epochs.append(store.epoch)
        finally:
            await store.close()
    assert all(epochs)
    assert epochs[0] != epochs[1]


async def test_the_sqlite_file_is_in_wal_mode_at_the_current_schema_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sub" / "dir" / "chat.db"  # missing directories are created
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.append(room_draft("general", "alice", "hi"))
        assert pragma(path, "journal_mode") == "wal"
        assert pragma(path, "user_version") == len(MIGRATIONS)
    finally:
        await store.close()
    assert pragma(path, "journal_mode") == "wal"


async def test_an_acknowledged_append_is_already_committed_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        conn = raw(path)
        try:
            for i in range(1, 4):
                await store.append(room_draft("general", "alice", f"m{i}"))
                (count,) = conn.execute("SELECT count(*) FROM messages").fetchone()
                assert count == i
        finally:
            conn.close()
    finally:
        await store.close()


async def test_a_file_from_a_newer_release_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    newer = len(MIGRATIONS) + 1
    conn = raw(path)
    conn.execute("CREATE TABLE from_the_future (x INTEGER)")
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()

    store = SQLiteStore(path)
    with pytest.raises(Exception, match=rf"schema version {newer}\b.*upgrade chatrpc"):
        await store.open()
    await store.close()
    assert pragma(path, "user_version") == newer  # left as it was


async def test_reopening_a_migrated_file_runs_only_the_migrations_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chat.db"

    async def reopen() -> list[str]:
        store = SQLiteStore(path)
        await store.open()
        try:
            return [m.text for m in await store.history("#general")]
        finally:
            await store.close()

    store = SQLiteStore(path)
    await store.open()
    try:
        await store.append(room_draft("general", "alice", "kept"))
    finally:
        await store.close()
    current = len(MIGRATIONS)
    assert pragma(path, "user_version") == current

    # The same version again: re-running its CREATE TABLEs would fail the open.
    assert await reopen() == ["kept"]
    assert pragma(path, "user_version") == current

    # A release with one more migration runs just that one, once.
    monkeypatch.setattr(
        sqlite_store,
        "MIGRATIONS",
        [*MIGRATIONS, "CREATE TABLE extra (x INTEGER); INSERT INTO extra (x) VALUES (1)"],
    )
    assert await reopen() == ["kept"]
    assert pragma(path, "user_version") == current + 1
    assert await reopen() == ["kept"]
    assert pragma(path, "user_version") == current + 1
    conn = raw(path)
    try:
        assert conn.execute("SELECT count(*) FROM extra").fetchone() == (1,)
    finally:
        conn.close()


async def test_tokens_stored_before_the_token_generation_existed_keep_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chat.db"
    with monkeypatch.context() as older:
        older.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:1])
        store = SQLiteStore(path)
        await store.open()
        await store.close()
    # Written as that release wrote them (today's code writes columns it lacked).
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO accounts VALUES ('alice', 'hash', 1)")
        conn.execute("INSERT INTO tokens VALUES ('tok-1', 'alice', 1)")
    assert pragma(path, "user_version") == 1
    store = SQLiteStore(path)
    await store.open()
    try:
        assert pragma(path, "user_version") == len(MIGRATIONS)
        assert await store.user_for_token("tok-1") == "alice"
        assert await store.token_generation("alice") == 0
        assert await store.mint_token("alice", "tok-2", proof_hash="tok-1")
        assert await store.revoke_tokens("alice") == 2
        assert await store.token_generation("alice") == 1
    finally:
        await store.close()


async def test_a_file_from_before_the_rooms_table_lists_its_rooms_by_their_last_message(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    conn = sqlite3.connect(path)
    try:  # what the first schema version holds
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO conversations (id, key, last_seq) VALUES (1, '#quiet', 0)")
        conn.execute("INSERT INTO conversations (id, key, last_seq) VALUES (2, '#old', 1)")
        conn.execute(
            "INSERT INTO messages (conv_id, seq, sender, text, sent_at_ms)"
            " VALUES (2, 1, 'alice', 'long ago', 1000000)"
        )
        conn.commit()
    finally:
        conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        page = await store.rooms_page(limit=10)
        assert [(e.name, e.last_seq) for e in page] == [("quiet", 0), ("old", 1)]
        assert page[1].active_ms == 1_000_000
    finally:
        await store.close()


async def test_a_closed_sqlite_store_refuses_work_as_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chat.db")
    await store.open()
    await store.append(room_draft("general", "alice", "before"))
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(StoreUnavailable):
        await store.append(room_draft("general", "alice", "after"))
    with pytest.raises(StoreUnavailable):
        await store.history("#general")
    with pytest.raises(StoreUnavailable):
        await store.create_account("alice", None, "tok")


async def test_closing_sqlite_finishes_the_appends_already_queued(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore(path)
    await store.open()
    seen = Recorder()
    store.set_listener(seen)
    tasks = [
        asyncio.ensure_future(store.append(room_draft("general", "alice", f"m{i}")))
        for i in range(50)
    ]
    await asyncio.sleep(0)  # let every task queue its append
    await asyncio.wait_for(store.close(), WAIT)
    results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert [m.seq for m, _ in results] == list(range(1, 51))
    assert seen.seqs("#general") == list(range(1, 51))
    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        assert await reopened.last_seq("#general") == 50
        assert len(await reopened.history("#general", limit=100)) == 50
    finally:
        await reopened.close()


class CountingSQLiteStore(SQLiteStore):
    """Records the size of every transaction; the first one waits for ``gate``.

    Holding the first transaction open until every append is queued makes the
    grouping independent of timing.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []
        self.gate = threading.Event()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> Any:
        if not self.batches:
            self.gate.wait(WAIT)
        self.batches.append(len(batch))
        return super()._run_batch(conn, batch)


async def test_sqlite_commits_concurrent_appends_in_fewer_transactions_than_messages(
    tmp_path: Path,
) -> None:
    store = CountingSQLiteStore(tmp_path / "chat.db")
    await store.open()
    seen = Recorder()
    store.set_listener(seen)
    try:
        tasks = [
            asyncio.ensure_future(store.append(room_draft(f"r{i % 4}", "alice", f"m{i}")))
            for i in range(400)
        ]
        await asyncio.sleep(0)  # let every task queue its append
        store.gate.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    finally:
        store.gate.set()
        await store.close()
    assert len(results) == 400
    assert sum(store.batches) == 400
    assert len(store.batches) < 400
    assert max(store.batches) > 1
    for r in range(4):
        assert seen.seqs(f"#r{r}") == list(range(1, 101))
