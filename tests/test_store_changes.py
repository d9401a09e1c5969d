"""The store contract for stored changes (edits, deletes, reactions), on every store.

A change is an item of its conversation (its own seq, idempotent, notified in
order) whose effect lands on the message it names in the same step, so History
gives each message in its current state (chatrpc.store.changes). The tests at
the end read the bytes a store keeps to show that a delete erases the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from chatrpc.model import DELETE, EDIT, MESSAGE, REACTION, Draft, StoredMessage, dm_key, room_key
from chatrpc.store import Store, StoreOptions, open_store

from . import test_store as contract
from .redis_fixture import RedisServer
from .test_store import MakeStore, Recorder, now_ms, room_draft

#: The store contract suite's fixtures: every test here runs on every store.
make_store = contract.make_store
store = contract.store

WAIT = 10.0


def change(
    kind: int,
    target: int,
    sender: str = "alice",
    text: str = "",
    cid: str = "",
    *,
    room: str = "general",
    emoji: str = "",
    remove: bool = False,
) -> Draft:
    return Draft(
        room_key(room),
        sender,
        text,
        now_ms(),
        cid,
        room=room,
        kind=kind,
        target_seq=target,
        emoji=emoji,
        remove=remove,
    )


async def item(store: Store, seq: int, conv: str = "#general") -> StoredMessage:
    (found,) = await store.history(conv, after_seq=seq - 1, limit=1)
    assert found.seq == seq
    return found


async def test_changes_take_the_next_seqs_of_the_conversation_with_no_gap(store: Store) -> None:
    await store.append(room_draft("general", "alice", "hello"))
    edit, _ = await store.append(change(EDIT, 1, text="hello!"))
    react, _ = await store.append(change(REACTION, 1, "bob", emoji="👍"))
    delete, _ = await store.append(change(DELETE, 1))
    last, _ = await store.append(room_draft("general", "bob", "after"))
    assert [edit.seq, react.seq, delete.seq, last.seq] == [2, 3, 4, 5]
    assert [(m.seq, m.kind, m.target_seq) for m in await store.history("#general")] == [
        (1, MESSAGE, 0),
        (2, EDIT, 1),
        (3, REACTION, 1),
        (4, DELETE, 1),
        (5, MESSAGE, 0),
    ]
    assert await store.last_seq("#general") == 5


async def test_an_edit_gives_the_message_its_new_text_and_keeps_the_edit_item(
    store: Store,
) -> None:
    await store.append(room_draft("general", "alice", "helo"))
    edit, duplicate = await store.append(change(EDIT, 1, text="hello"))
    assert not duplicate
    assert (edit.kind, edit.target_seq, edit.text, edit.sender) == (EDIT, 1, "hello", "alice")
    await store.append(change(EDIT, 1, text="hello all"))
    message = await item(store, 1)
    assert (message.text, message.edited, message.deleted) == ("hello all", True, False)
    assert [m.text for m in await store.history("#general", after_seq=1)] == [
        "hello",
        "hello all",
    ]


async def test_a_delete_erases_the_message_its_edits_and_its_reactions(store: Store) -> None:
    await store.append(room_draft("general", "alice", "secret one"))
    await store.append(room_draft("general", "bob", "stays"))
    await store.append(change(EDIT, 1, text="secret two"))
    await store.append(change(REACTION, 1, "bob", emoji="😮"))
    delete, _ = await store.append(change(DELETE, 1))
    assert (delete.kind, delete.target_seq, delete.text) == (DELETE, 1, "")
    found = await store.history("#general")
    assert [(m.seq, m.text) for m in found] == [(1, ""), (2, "stays"), (3, ""), (4, ""), (5, "")]
    assert (found[0].deleted, found[0].edited, found[0].reactions) == (True, True, ())
    assert not found[1].deleted and found[1].text == "stays"


async def test_reactions_aggregate_by_emoji_with_sorted_users_and_can_be_taken_back(
    store: Store,
) -> None:
    await store.append(room_draft("general", "alice", "lunch?"))
    for user, emoji in [("carol", "👍"), ("bob", "🍕"), ("alice", "👍"), ("bob", "👍")]:
        await store.append(change(REACTION, 1, user, emoji=emoji))
    await store.append(change(REACTION, 1, "bob", emoji="👍"))  # twice: still once
    # By emoji (code point order: 🍕 U+1F355 before 👍 U+1F44D), users sorted.
    assert (await item(store, 1)).reactions == (
        ("🍕", ("bob",)),
        ("👍", ("alice", "bob", "carol")),
    )
    await store.append(change(REACTION, 1, "bob", emoji="🍕", remove=True))
    await store.append(change(REACTION, 1, "alice", emoji="👍", remove=True))
    await store.append(change(REACTION, 1, "alice", emoji="🎉", remove=True))  # never added
    message = await item(store, 1)
    assert message.reactions == (("👍", ("bob", "carol")),)
    assert not message.edited and message.text == "lunch?"
    removal = await item(store, 7)
    assert (removal.kind, removal.emoji, removal.remove, removal.sender) == (
        REACTION,
        "🍕",
        True,
        "bob",
    )


async def test_a_retried_change_is_stored_and_applied_once(store: Store) -> None:
    recorder = Recorder()
    store.set_listener(recorder)
    await store.append(room_draft("general", "alice", "hi"))
    await store.append(change(REACTION, 1, "bob", cid="r-1", emoji="👋"))
    await store.append(change(REACTION, 1, "bob", cid="r-2", emoji="👋", remove=True))
    again, duplicate = await store.append(change(REACTION, 1, "bob", cid="r-1", emoji="👋"))
    assert duplicate
    assert (again.seq, again.kind, again.emoji, again.target_seq) == (2, REACTION, "👋", 1)
    assert (await item(store, 1)).reactions == ()  # the retry did not add it back
    assert await store.last_seq("#general") == 3
    assert recorder.seqs("#general") == [1, 2, 3]


async def test_a_retried_edit_of_a_message_deleted_since_answers_without_its_text(
    store: Store,
) -> None:
    await store.append(room_draft("general", "alice", "draft"))
    await store.append(change(EDIT, 1, text="private", cid="e-1"))
    await store.append(change(DELETE, 1, cid="d-1"))
    again, duplicate = await store.append(change(EDIT, 1, text="private", cid="e-1"))
    assert duplicate and again.seq == 2 and again.kind == EDIT and again.text == ""
    deleted, duplicate = await store.append(change(DELETE, 1, cid="d-1"))
    assert duplicate and deleted.seq == 3


async def test_a_change_of_no_live_message_is_stored_but_changes_nothing(store: Store) -> None:
    await store.append(room_draft("general", "alice", "one"))
    await store.append(change(DELETE, 1))
    late_edit, _ = await store.append(change(EDIT, 1, text="resurrected"))
    assert late_edit.seq == 3 and late_edit.text == ""
    await store.append(change(REACTION, 1, "bob", emoji="👍"))
    await store.append(change(EDIT, 99, text="nowhere"))
    await store.append(change(EDIT, 3, text="an edit of an edit"))
    found = await store.history("#general")
    assert [m.seq for m in found] == [1, 2, 3, 4, 5, 6]
    assert (found[0].text, found[0].deleted, found[0].reactions) == ("", True, ())
    assert [m.text for m in found[2:]] == ["", "", "", ""]
    assert not found[2].edited


async def test_changes_in_one_batch_apply_in_order_and_are_notified_in_order(
    store: Store,
) -> None:
    recorder = Recorder()
    store.set_listener(recorder)
    results = await store.append_many(
        [
            room_draft("general", "alice", "first"),
            change(EDIT, 1, text="second"),
            change(REACTION, 1, "bob", emoji="✅"),
            change(EDIT, 1, text="third"),
        ]
    )
    assert [m.seq for m, _ in results] == [1, 2, 3, 4]
    assert [(m.kind, m.text) for m in recorder.messages] == [
        (MESSAGE, "first"),
        (EDIT, "second"),
        (REACTION, ""),
        (EDIT, "third"),
    ]
    message = await item(store, 1)
    assert (message.text, message.edited, message.reactions) == ("third", True, (("✅", ("bob",)),))


async def test_a_reply_keeps_the_seq_it_answers(store: Store) -> None:
    await store.append(room_draft("general", "alice", "question"))
    reply = Draft("#general", "bob", "answer", now_ms(), room="general", reply_to=1)
    msg, _ = await store.append(reply)
    assert msg.reply_to == 1
    assert [m.reply_to for m in await store.history("#general")] == [0, 1]


async def test_changes_in_a_dm_apply_to_that_dm_only(store: Store) -> None:
    conv = dm_key("alice", "bob")
    await store.append(Draft(conv, "alice", "psst", now_ms(), to_user="bob"))
    await store.append(room_draft("general", "alice", "public"))
    edit = Draft(conv, "alice", "psst!", now_ms(), to_user="bob", kind=EDIT, target_seq=1)
    stored, _ = await store.append(edit)
    assert stored.to_user == "bob" and stored.seq == 2
    assert (await item(store, 1, conv)).text == "psst!"
    assert (await item(store, 1)).text == "public"


async def test_retention_drops_old_messages_with_their_reactions(make_store: MakeStore) -> None:
    store = await make_store(StoreOptions(retention_max_messages=3))
    await store.append(room_draft("general", "alice", "m1"))
    await store.append(change(REACTION, 1, "bob", emoji="👍"))
    for i in range(3):
        await store.append(room_draft("general", "alice", f"later {i}"))
    assert [m.seq for m in await store.history("#general")] == [3, 4, 5]
    await store.append(change(REACTION, 5, "bob", emoji="👍"))
    assert (await item(store, 5)).reactions == (("👍", ("bob",)),)


# -- a delete really deletes: the bytes each store keeps ---------------------------------


async def _write_and_delete(store: Store, secret: str, *, edit: bool) -> None:
    await store.append(room_draft("general", "alice", f"my {secret} is"))
    await store.append(room_draft("general", "bob", "something else"))
    if edit:
        await store.append(change(EDIT, 1, text=f"my {secret} was, {secret}-edited"))
    await store.append(change(DELETE, 1))


def _checkpoint(path: Path) -> int:
    """Checkpoints the WAL into the database and truncates it; 0 unless busy."""
    # closing(): a connection's own context manager ends a transaction, not the connection.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return int(busy)


def _files_holding(directory: Path, prefix: str, data: bytes) -> list[str]:
    """The database files (the database, -wal, -shm) whose raw bytes hold ``data``."""
    files = sorted(p for p in directory.iterdir() if p.name.startswith(prefix))
    assert files, f"no {prefix} files in {directory}"
    return [p.name for p in files if data in p.read_bytes()]


@pytest.mark.parametrize("edit", [False, True], ids=["sent", "edited"])
async def test_a_deleted_text_is_in_no_sqlite_file_once_the_wal_is_checkpointed(
    tmp_path: Path, edit: bool
) -> None:
    path = tmp_path / "chat.db"
    store = open_store(f"sqlite://{path}")
    await store.open()
    try:
        secret = "hunter2-correct-horse"
        await _write_and_delete(store, secret, edit=edit)
        assert (await store.history("#general"))[1].text == "something else"
        assert _checkpoint(path) == 0
        assert _files_holding(tmp_path, "chat.db", b"something else") == ["chat.db"]
        assert _files_holding(tmp_path, "chat.db", secret.encode()) == []
    finally:
        await store.close()


def _redis_bytes(client: Any) -> bytes:
    """Every key and value of a Redis database, as bytes (streams, hashes, strings...)."""
    out = bytearray()
    for key in client.scan_iter():
        out += key
        kind = client.type(key)
        if kind == b"stream":
            for entry_id, fields in client.xrange(key):
                out += entry_id + b"".join(k + v for k, v in fields.items())
        elif kind == b"hash":
            out += b"".join(k + v for k, v in client.hgetall(key).items())
        elif kind == b"string":
            out += client.get(key) or b""
        elif kind == b"set":
            out += b"".join(client.smembers(key))
        elif kind == b"zset":
            out += b"".join(m for m, _ in client.zrange(key, 0, -1, withscores=True))
        dump = client.dump(key)
        out += dump or b""
    return bytes(out)


@pytest.mark.parametrize("edit", [False, True], ids=["sent", "edited"])
async def test_a_deleted_text_is_in_no_redis_key(redis_server: RedisServer, edit: bool) -> None:
    redis_server.flush()
    store = open_store(redis_server.url)
    await store.open()
    client = redis_sync.Redis.from_url(redis_server.url)
    try:
        secret = "hunter2-correct-horse"
        await store.append(room_draft("general", "carol", "before"))
        await store.append(room_draft("general", "alice", f"my {secret} is"))
        if edit:
            await store.append(change(EDIT, 2, text=f"{secret}-edited", cid="e-1"))
        assert secret.encode() in _redis_bytes(client)  # the check can find it
        await store.append(change(DELETE, 2, cid="d-1"))
        assert secret.encode() not in _redis_bytes(client)
        assert b"before" in _redis_bytes(client)
    finally:
        client.close()
        await store.close()


async def test_another_redis_server_receives_changes_live_in_order(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    here = open_store(redis_server.url)
    there = open_store(redis_server.url)
    await here.open()
    await there.open()
    seen: list[StoredMessage] = []
    arrived = asyncio.Event()

    def listener(messages: Sequence[StoredMessage]) -> None:
        seen.extend(messages)
        arrived.set()

    there.set_listener(listener)
    try:
        there.watch("#general")
        await here.append(room_draft("general", "alice", "first"))
        async with asyncio.timeout(WAIT):
            while not seen:
                arrived.clear()
                await arrived.wait()
        await here.append_many(
            [
                change(EDIT, 1, text="first, edited"),
                change(REACTION, 1, "bob", emoji="👍"),
                change(DELETE, 1),
            ]
        )
        async with asyncio.timeout(WAIT):
            while len(seen) < 4:
                arrived.clear()
                await arrived.wait()
        assert [(m.seq, m.kind, m.target_seq) for m in seen] == [
            (1, MESSAGE, 0),
            (2, EDIT, 1),
            (3, REACTION, 1),
            (4, DELETE, 1),
        ]
        assert seen[2].emoji == "👍" and seen[2].sender == "bob"
        assert (await there.history("#general"))[0].deleted
    finally:
        await here.close()
        await there.close()


async def test_redis_retention_drops_the_texts_and_states_of_the_entries_it_trims(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    store = open_store(redis_server.url, StoreOptions(retention_max_messages=3))
    await store.open()
    client = redis_sync.Redis.from_url(redis_server.url)
    try:
        for i in range(1, 8):
            await store.append(room_draft("general", "alice", f"text {i}"))
            await store.append(change(REACTION, 2 * i - 1, "bob", emoji="👍"))
        assert [m.seq for m in await store.history("#general")] == [12, 13, 14]
        assert sorted(int(f) for f in client.hkeys("chatrpc:body:#general")) == [13]
        assert sorted(client.hkeys("chatrpc:state:#general")) == [b"13", b"lo"]
        assert b"text 1" not in _redis_bytes(client)
    finally:
        client.close()
        await store.close()
