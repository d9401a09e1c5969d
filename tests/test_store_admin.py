"""The store's operations role (chatrpc.store.admin) on every store: memory, SQLite, Redis."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

from chatrpc.model import dm_key, room_key
from chatrpc.store import Store, open_store
from chatrpc.store.sqlite import MIGRATIONS, SQLiteStore

from .redis_fixture import RedisServer
from .test_store import dm_draft, make_store, room_draft, store
from .test_store_changes import _redis_bytes

__all__ = ["make_store", "store"]


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_users_are_listed_by_name_a_page_at_a_time_with_a_prefix(store: Store) -> None:
    for name in ("bob", "alice", "alina", "carol"):
        assert await store.create_account(name, "pw" if name == "bob" else None, f"t-{name}")
    first = await store.users_page("", limit=2)
    assert [u.user for u in first] == ["alice", "alina"]
    rest = await store.users_page("", limit=10, after="alina")
    assert [u.user for u in rest] == ["bob", "carol"]
    assert [u.user for u in await store.users_page("ali", limit=10)] == ["alice", "alina"]
    assert [u.user for u in await store.users_page("ali", limit=10, after="alice")] == ["alina"]
    bob = await store.account_info("bob")
    assert bob is not None and bob.has_password and not bob.disabled
    assert bob.created_ms > 0 and bob.last_seen_ms >= bob.created_ms
    assert await store.account_info("nobody") is None
    assert await store.count_accounts() == 4


async def test_a_disabled_account_says_so_and_can_be_enabled(store: Store) -> None:
    await store.create_account("alice", None, "t1")
    assert await store.set_disabled("alice", True)
    account = await store.account_for_token("t1")
    assert account is not None and account.disabled
    assert (await store.get_account("alice")).disabled  # type: ignore[union-attr]
    assert await store.set_disabled("alice", False)
    assert not (await store.get_account("alice")).disabled  # type: ignore[union-attr]
    assert not await store.set_disabled("nobody", True)
    assert await store.account_for_token("unknown") is None


async def test_a_password_can_be_cleared(store: Store) -> None:
    await store.create_account("alice", "hash", "t1")
    assert await store.clear_password("alice")
    assert (await store.get_account("alice")).password_hash is None  # type: ignore[union-attr]
    assert not await store.clear_password("nobody")


async def test_a_room_is_owned_by_its_creator_until_given_away(store: Store) -> None:
    assert (await store.claim_room("general", "alice")).created
    await store.claim_room("general", "bob")  # joining costs nothing and changes nothing
    assert await store.room_owner("general") == "alice"
    assert await store.set_room_owner("general", "bob") == "alice"
    assert await store.room_owner("general") == "bob"
    assert await store.set_room_owner("nowhere", "bob") is None
    assert await store.room_owner("nowhere") is None


async def test_rooms_are_listed_with_their_sizes(store: Store) -> None:
    await store.claim_room("general", "alice")
    await store.claim_room("games", "bob")
    await store.add_member("general", "alice")
    await store.add_member("general", "bob")
    for i in range(3):
        await store.append(room_draft("general", "alice", f"m{i}"))
    infos = await store.room_infos("", limit=10)
    assert [(r.name, r.owner, r.members, r.stored, r.last_seq) for r in infos] == [
        ("games", "bob", 0, 0, 0),
        ("general", "alice", 2, 3, 3),
    ]
    assert [r.name for r in await store.room_infos("gam", limit=10)] == ["games"]
    assert [r.name for r in await store.room_infos("", limit=10, after="games")] == ["general"]
    assert await store.count_rooms() == 2


async def test_a_deleted_room_loses_its_messages_and_members_but_never_reuses_a_seq(
    store: Store,
) -> None:
    await store.claim_room("general", "alice")
    await store.add_member("general", "alice")
    await store.append(room_draft("general", "alice", "one"))
    await store.append(room_draft("general", "alice", "two"))
    deleted = await store.delete_room("general")
    assert deleted is not None and deleted.messages == 2 and deleted.members == ["alice"]
    assert await store.delete_room("general") is None
    assert await store.room_owner("general") is None
    assert not await store.is_member("general", "alice")
    assert await store.history(room_key("general")) == []
    await store.claim_room("general", "bob")
    msg, _ = await store.append(room_draft("general", "bob", "again"))
    assert msg.seq == 3
    assert await store.room_owner("general") == "bob"


async def test_history_is_pruned_by_count_and_by_age_keeping_seqs(store: Store) -> None:
    conv = room_key("general")
    await store.claim_room("general", "alice")
    old = now_ms() - 3_600_000
    for i in range(5):
        draft = room_draft("general", "alice", f"m{i}")
        if i < 2:
            draft = type(draft)(draft.conv, draft.sender, draft.text, old, room="general")
        await store.append(draft)
    assert await store.prune_history(conv, before_ms=now_ms() - 60_000) == 2
    assert [m.seq for m in await store.history(conv)] == [3, 4, 5]
    assert await store.prune_history(conv, keep_last=1) == 2
    assert [m.seq for m in await store.history(conv)] == [5]
    msg, _ = await store.append(room_draft("general", "alice", "next"))
    assert msg.seq == 6


async def test_only_idle_accounts_without_password_dm_or_room_expire(store: Store) -> None:
    for name in ("idle", "withpw", "talker", "owner", "off", "fresh", "peer"):
        await store.create_account(name, "pw" if name == "withpw" else None, f"t-{name}")
    await store.append(dm_draft("talker", "peer2", "hello"))
    await store.claim_room("mine", "owner")
    await store.set_disabled("off", True)
    await store.add_member("lobby", "idle")
    await store.touch_accounts(["fresh"], now_ms() + 60_000)
    cutoff = now_ms() + 1
    gone: list[str] = []
    start: str | None = ""
    while start is not None:  # bounded steps, as the background pruner takes them
        removed, start = await store.expire_idle_accounts(cutoff, limit=2, after=start)
        gone += removed
    assert sorted(gone) == ["idle", "peer"]
    assert await store.get_account("idle") is None
    assert await store.user_for_token("t-idle") is None
    assert not await store.is_member("lobby", "idle")
    for kept in ("withpw", "talker", "owner", "off", "fresh"):
        assert await store.get_account(kept) is not None, kept
    # The name is free again.
    assert await store.create_account("idle", None, "t-new")
    assert [c.key for c in await store.list_directs("talker")] == [dm_key("talker", "peer2")]


async def test_a_file_from_before_owners_knows_creators_and_last_seen_times(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    conn = sqlite3.connect(path)
    try:  # what schema version 4 holds: a room created by alice, one by nobody
        for script in MIGRATIONS[:4]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 4")
        conn.execute(
            "INSERT INTO accounts (user, password_hash, created_ms) VALUES ('al', NULL, 7)"
        )
        conn.execute("INSERT INTO conversations (key) VALUES ('#made'), ('#found')")
        conn.execute("INSERT INTO rooms VALUES ('#made', 5, 5), ('#found', 6, 6)")
        conn.execute("INSERT INTO room_creations VALUES ('al', 5, '#made')")
        conn.commit()
    finally:
        conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.room_owner("made") == "al"
        assert await store.room_owner("found") == ""
        info = await store.account_info("al")
        assert info is not None and info.last_seen_ms == 7 and not info.disabled
    finally:
        await store.close()


async def test_accounts_from_before_the_redis_account_index_are_listed(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    raw = aioredis.from_url(redis_server.url_for(0), decode_responses=True)
    try:  # as an older release wrote them: no names or last-seen index
        await raw.hset("chatrpc:account:old", mapping={"user": "old"})
        await raw.hset("chatrpc:account:older", mapping={"user": "older", "pw": "h"})
    finally:
        await raw.aclose()
    store = open_store(redis_server.url_for(0))
    await store.open()
    try:
        users = await store.users_page("", limit=10)
        assert [(u.user, u.has_password) for u in users] == [("old", False), ("older", True)]
        assert users[0].last_seen_ms > 0  # seen when indexed: the TTL counts from now
    finally:
        await store.close()


async def test_pruned_and_deleted_rooms_leave_no_text_in_any_redis_key(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    store = open_store(redis_server.url_for(0))
    await store.open()
    client = redis.Redis.from_url(redis_server.url_for(0))
    try:
        await store.claim_room("general", "alice")
        for word in ("pruned-by-age", "pruned-by-count", "kept-text"):
            await store.append(room_draft("general", "alice", word))
        await store.claim_room("gone", "alice")
        await store.append(room_draft("gone", "alice", "deleted-room-text"))
        assert b"pruned-by-age" in _redis_bytes(client)  # the check can find it
        assert await store.prune_history(room_key("general"), keep_last=2) == 1
        assert await store.prune_history(room_key("general"), keep_last=1) == 1
        assert await store.delete_room("gone") is not None
        every = _redis_bytes(client)
        for text in (b"pruned-by-age", b"pruned-by-count", b"deleted-room-text"):
            assert text not in every
        assert b"kept-text" in every
    finally:
        client.close()
        await store.close()
