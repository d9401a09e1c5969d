"""The search role of the stores: the FTS5 index and its erasure, the bounded scan, queries."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatrpc.errors import ChatError, Code
from chatrpc.model import EDIT, Draft, StoredMessage, dm_key
from chatrpc.store import Store, StoreOptions
from chatrpc.store import sqlite as sqlite_store
from chatrpc.store.matching import parse_query, snippet
from chatrpc.store.memory import MemoryStore
from chatrpc.store.redis import RedisStore
from chatrpc.store.scan import scan_search
from chatrpc.store.sqlite import MIGRATIONS, SQLiteStore
from chatrpc.store.sqlite.schema import connect

from .redis_fixture import RedisServer

SECRET = b"zqxjsecretword"

_clock = [1_700_000_000_000]


def draft(conv: str, text: str, sender: str = "alice") -> Draft:
    _clock[0] += 1  # distinct, growing sent times: the order is the append order
    room = conv[1:] if conv.startswith("#") else ""
    return Draft(conv, sender, text, _clock[0], room=room)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    options = StoreOptions()
    s: Store
    if request.param == "memory":
        s = MemoryStore(options)
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "chat.db", options)
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        redis.flush()
        s = RedisStore(redis.url, options)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def texts(store: Store, query: str, convs: list[str], **kw: int | str) -> list[str]:
    page = await store.search(parse_query(query), convs, limit=100, **kw)  # type: ignore[arg-type]
    return [m.text for m in page.hits]


async def test_every_store_searches_only_the_conversations_it_is_given(store: Store) -> None:
    for conv in ("#a", "#b", dm_key("alice", "bob")):
        await store.append(draft(conv, f"hello from {conv}"))
        await store.append(draft(conv, "nothing"))
    assert await texts(store, "hello", ["#a"]) == ["hello from #a"]
    assert await texts(store, "hello", ["#b", "@alice@bob"]) == [
        "hello from @alice@bob",
        "hello from #b",
    ]
    assert await texts(store, "hello", []) == []
    assert await texts(store, "hello", ["#never"]) == []


async def test_a_page_token_never_widens_the_conversations_searched(store: Store) -> None:
    for i in range(6):
        for conv in ("#a", "#b", "#c"):
            await store.append(draft(conv, f"word {i}"))
    first = await store.search(parse_query("word"), ["#a", "#b", "#c"], limit=3)
    assert first.next_page_token
    rest = await store.search(
        parse_query("word"), ["#a", "#b"], limit=100, page_token=first.next_page_token
    )
    assert {m.conv for m in rest.hits} == {"#a", "#b"}


async def test_every_store_refuses_a_page_token_it_did_not_make(store: Store) -> None:
    await store.append(draft("#a", "word"))
    for token in ["garbage", "s" + "A" * 40, "YXw1fHg", "cXx4fCNhfDE"]:
        with pytest.raises(ChatError) as err:
            await store.search(parse_query("word"), ["#a"], limit=5, page_token=token)
        assert err.value.code is Code.INVALID_ARGUMENT


async def test_members_rooms_are_listed_by_name_until_they_leave(store: Store) -> None:
    await store.add_member("zeta", "alice")
    await store.add_member("alpha", "alice")
    await store.add_member("alpha", "bob")
    assert await store.member_rooms("alice") == ["alpha", "zeta"]
    await store.remove_member("zeta", "alice")
    assert await store.member_rooms("alice") == ["alpha"]
    assert await store.member_rooms("nobody") == []


async def test_retention_takes_dropped_messages_out_of_search(tmp_path: Path) -> None:
    for s in (
        MemoryStore(StoreOptions(retention_max_messages=3)),
        SQLiteStore(tmp_path / "r.db", StoreOptions(retention_max_messages=3)),
    ):
        await s.open()
        try:
            for i in range(6):
                await s.append(draft("#a", f"kept {i}"))
            assert await texts(s, "kept", ["#a"]) == ["kept 5", "kept 4", "kept 3"]
        finally:
            await s.close()


def files_hold(path: Path, needle: bytes) -> list[str]:
    """Which of the database's files (the file, its WAL, its shared memory) hold ``needle``."""
    found = []
    for suffix in ("", "-wal", "-shm", "-journal"):
        f = Path(str(path) + suffix)
        if f.exists() and needle in f.read_bytes():
            found.append(f.name)
    return found


async def test_a_deleted_messages_text_leaves_the_sqlite_files_after_a_checkpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.append(draft("#a", "before " + SECRET.decode() + " after"))
        for i in range(400):  # index segments beyond the first, merged or not
            await store.append(draft("#a" if i % 2 else "#b", f"filler message {i} words"))
        assert await texts(store, SECRET.decode(), ["#a"]) != []
    finally:
        await store.close()
    conn = connect(path, "FULL", readonly=False)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert files_hold(path, SECRET) == ["chat.db"]  # the test can see it
        # What a delete does to the message's row: its text erased, marked deleted.
        conn.execute(
            "UPDATE messages SET text = '', deleted = 1 WHERE seq = 1 AND conv_id ="
            " (SELECT id FROM conversations WHERE key = '#a')"
        )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    assert files_hold(path, SECRET) == []
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await texts(store, SECRET.decode(), ["#a"]) == []
        assert len(await texts(store, "filler", ["#a", "#b"])) == 100
    finally:
        await store.close()


async def test_an_edit_replaces_a_messages_words_in_the_sqlite_index(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.append(draft("#a", "old wording"))
        conn = connect(path, "FULL", readonly=False)
        try:
            conn.execute("UPDATE messages SET text = 'new phrasing', edited = 1")
        finally:
            conn.close()
        assert await texts(store, "wording", ["#a"]) == []
        assert await texts(store, "phrasing", ["#a"]) == ["new phrasing"]
    finally:
        await store.close()


async def test_messages_stored_before_the_search_index_existed_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chat.db"
    with monkeypatch.context() as older:
        older.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:4])
        store = SQLiteStore(path)
        await store.open()
        try:
            await store.append(draft("#a", "written long ago"))
        finally:
            await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (4,)
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await texts(store, "long ago", ["#a"]) == ["written long ago"]
    finally:
        await store.close()


class CountingStore(MemoryStore):
    """A memory store that counts the items its history reads return."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0

    async def history(self, conv: str, **kw: int | bool) -> list[StoredMessage]:
        page = await super().history(conv, **kw)  # type: ignore[arg-type]
        self.read += len(page)
        return page


async def test_a_scan_reads_at_most_its_budget_per_call_and_goes_on_with_a_token() -> None:
    store = CountingStore()
    await store.open()
    await store.append(draft("#a", "the rare needle"))
    for i in range(120):
        await store.append(draft(["#a", "#b", "#c"][i % 3], f"hay {i}"))
    query = parse_query("needle")
    token, calls, hits = "", 0, []
    while True:
        store.read = 0
        page = await scan_search(
            store, query, ["#a", "#b", "#c"], limit=5, page_token=token, budget=10
        )
        calls += 1
        assert store.read <= 10 + 3  # the budget, and at most one item per conversation more
        hits += page.hits
        token = page.next_page_token
        if not token:
            break
        assert calls < 50
    assert [m.text for m in hits] == ["the rare needle"]
    assert calls >= 121 // 13


async def test_a_scan_skips_messages_sent_after_its_first_page() -> None:
    store = MemoryStore()
    await store.open()
    for i in range(4):
        await store.append(draft("#a", f"word a{i}"))
    await store.append(draft("#b", "word b0"))
    query = parse_query("word")
    first = await scan_search(store, query, ["#a", "#b"], limit=2)
    assert [m.text for m in first.hits] == ["word b0", "word a3"]
    await store.append(draft("#b", "word b1 (newer than the first page)"))
    await store.append(draft("#c", "word c0"))
    rest = await scan_search(store, query, ["#a", "#b"], limit=10, page_token=first.next_page_token)
    assert [m.text for m in rest.hits] == ["word a2", "word a1", "word a0"]
    assert rest.next_page_token == ""


def test_a_query_is_words_with_optional_prefixes() -> None:
    q = parse_query("Crème  brûlée* don't")
    assert [(t.folded, t.prefix) for t in q.terms] == [
        ("creme", False),
        ("brulee", True),
        ("don", False),
        ("t", False),
    ]
    assert q.fts5() == '"Crème" "brûlée" * "don" "t"'
    assert q.matches("I don't like CREME brûléeS, t")
    assert not q.matches("I don't like creme")
    for bad in ["", "*", "x*", "\x00word", "a" * 257]:
        with pytest.raises(ChatError):
            parse_query(bad)


def test_a_snippet_is_one_short_line_around_the_first_match() -> None:
    q = parse_query("needle")
    assert snippet(q, "a needle") == "a needle"
    text = "start " + "x" * 200 + " the needle\tin\nthe " + "y " * 100
    out = snippet(q, text)
    assert "the needle in the" in out and out.startswith("…") and out.endswith("…")
    assert len(out) <= 100
    assert snippet(q, "no match here") == "no match here"
    assert len(snippet(q, "n" * 500 + " needle")) <= 100


async def test_redis_indexes_memberships_made_before_its_member_index(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio as aioredis

    redis_server.flush()
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        await store.claim_room("old", "alice")
        await store.add_member("old", "alice")
    finally:
        await store.close()
    r = aioredis.from_url(redis_server.url)
    try:  # as a release before the index left it
        assert await r.delete("chatrpc:memberof:alice", "chatrpc:memberof-indexed") == 2
    finally:
        await r.aclose()
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        assert await store.member_rooms("alice") == ["old"]
    finally:
        await store.close()


async def test_a_scan_never_returns_a_deleted_message_or_a_change_item() -> None:
    store = MemoryStore()
    await store.open()
    kept, _ = await store.append(draft("#a", "word kept"))
    gone, _ = await store.append(draft("#a", "word gone"))
    change, _ = await store.append(draft("#a", "word in an edit item"))
    # The state a delete and an edit leave (their stored forms come with the
    # conversation features): a message marked deleted, a change item.
    log = store._messages["#a"]
    log[1].deleted = True
    log[2].kind = EDIT
    page = await scan_search(store, parse_query("word"), ["#a"], limit=10)
    assert [m.seq for m in page.hits] == [kept.seq]
    assert (gone.seq, change.seq) == (2, 3)


async def test_a_scan_goes_past_many_messages_sent_since_its_first_page() -> None:
    store = MemoryStore()
    await store.open()
    for i in range(3):
        await store.append(draft("#a", f"word a{i}"))
        await store.append(draft("#b", f"word b{i}"))
    query = parse_query("word")
    first = await scan_search(store, query, ["#a", "#b"], limit=1, budget=4)
    assert [m.text for m in first.hits] == ["word b2"]
    # #a, not taken from yet, gets more new messages than a page or the budget.
    for i in range(30):
        await store.append(draft("#a", f"word new{i}"))
    token, rest = first.next_page_token, []
    for _ in range(20):
        page = await scan_search(store, query, ["#a", "#b"], limit=10, page_token=token, budget=4)
        rest += [m.text for m in page.hits]
        token = page.next_page_token
        if not token:
            break
    assert rest == ["word a2", "word b1", "word a1", "word b0", "word a0"]
