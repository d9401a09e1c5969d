"""Search: what it finds, for whom, in which order, a page at a time; on every store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from chatrpc.client import channel
from chatrpc.client.connection import auth_metadata
from chatrpc.hub import Limits
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, make_config, running_server, target
from .redis_fixture import RedisServer
from .web_client import web_url


@pytest.fixture(params=["memory", "sqlite", "redis"])
def every_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs against every store, Redis on a real redis-server."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'chat.db'}"
    redis: RedisServer = request.getfixturevalue("redis_server")
    redis.flush()
    return redis.url


@pytest.fixture
async def srv(every_store: str) -> AsyncIterator[ChatServer]:
    server = ChatServer(make_config(every_store))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def peers(srv: ChatServer) -> AsyncIterator[Peers]:
    group = Peers(target(srv))
    try:
        yield group
    finally:
        await group.close()


async def search(peer: Peer, query: str, **fields: Any) -> pb.SearchResponse:
    stub = pb_grpc.ChatServiceStub(peer.ch)
    response: pb.SearchResponse = await stub.Search(
        pb.SearchRequest(query=query, **fields), metadata=auth_metadata(peer.token), timeout=10
    )
    return response


async def refused(peer: Peer, query: str, **fields: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search(peer, query, **fields)
    return err.value.code(), err.value.details() or ""


def texts(response: pb.SearchResponse) -> list[str]:
    return [h.message.text for h in response.hits]


async def everything(peer: Peer, query: str, **fields: Any) -> list[pb.SearchHit]:
    """Every hit of a query, following page tokens to the end."""
    hits: list[pb.SearchHit] = []
    token = ""
    for _ in range(200):
        page = await search(peer, query, page_token=token, **fields)
        hits.extend(page.hits)
        token = page.next_page_token
        if not token:
            return hits
    raise AssertionError("the pages never ended")


async def test_search_finds_every_word_in_any_order_ignoring_case_and_diacritics(peers):
    alice = await peers.open("alice")
    await alice.join("general")
    for text in [
        "Deploy the release on Friday",
        "friday is a bad day to DEPLOY",
        "the release notes are ready",
        "Un café, s'il vous plaît",
        "deployment finished",
    ]:
        await alice.send_and_ack(text, room="general")
    assert texts(await search(alice, "deploy friday")) == [
        "friday is a bad day to DEPLOY",
        "Deploy the release on Friday",
    ]
    assert texts(await search(alice, "CAFE")) == ["Un café, s'il vous plaît"]
    assert texts(await search(alice, "deploy*")) == [
        "deployment finished",
        "friday is a bad day to DEPLOY",
        "Deploy the release on Friday",
    ]
    assert texts(await search(alice, "deploy")) == [
        "friday is a bad day to DEPLOY",
        "Deploy the release on Friday",
    ]
    assert texts(await search(alice, "release missing")) == []
    hit = (await search(alice, "notes")).hits[0]
    assert (hit.message.room, hit.message.sender, hit.message.seq) == ("general", "alice", 3)
    assert hit.message.sent_at.seconds > 0


async def test_search_syntax_from_users_is_only_words(peers):
    alice = await peers.open("alice")
    await alice.join("general")
    await alice.send_and_ack('say "near" or NOT, and (maybe) a:b', room="general")
    await alice.send_and_ack("nothing to see", room="general")
    for query in ['"near"', "NEAR(or not)", "and OR not", "a:b", "maybe)", "(maybe*", "^say"]:
        assert texts(await search(alice, query)) == ['say "near" or NOT, and (maybe) a:b'], query


async def test_search_covers_only_the_callers_rooms_and_own_direct_messages(peers):
    alice, bob, carol = [await peers.open(u) for u in ("alice", "bob", "carol")]
    await alice.join("ours")
    await bob.join("ours")
    await bob.join("bobs")
    await alice.send_and_ack("secret plan in ours", room="ours")
    await bob.send_and_ack("secret plan in bobs", room="bobs")
    await bob.send_and_ack("secret plan for carol", to_user="carol")
    await carol.send_and_ack("secret plan for alice", to_user="alice")
    assert sorted(texts(await search(alice, "secret plan"))) == [
        "secret plan for alice",
        "secret plan in ours",
    ]
    assert sorted(texts(await search(carol, "secret"))) == [
        "secret plan for alice",
        "secret plan for carol",
    ]
    assert texts(await search(alice, "secret", with_user="carol")) == ["secret plan for alice"]
    # Another user's DMs: the scope names the caller's own DM with them (empty).
    assert texts(await search(alice, "secret", with_user="bob")) == []
    # A room the caller is not in answers exactly as one that does not exist.
    not_member = await refused(alice, "secret", room="bobs")
    missing = await refused(alice, "secret", room="nowhere")
    assert not_member[0] == missing[0] == grpc.StatusCode.NOT_FOUND
    assert not_member[1].replace("bobs", "X") == missing[1].replace("nowhere", "X")
    # After leaving, a room is no longer searched.
    assert "secret plan in bobs" in texts(await search(bob, "secret"))
    await bob.stream.leave("bobs")
    await bob.wait_for(lambda ev: any(left.room == "bobs" for left in bob.of("left")))
    assert (await refused(bob, "secret", room="bobs"))[0] == grpc.StatusCode.NOT_FOUND
    assert "secret plan in bobs" not in texts(await search(bob, "secret"))


def order(m: pb.Message) -> tuple[int, str, int]:
    conv = "#" + m.room if m.room else "@" + "@".join(sorted((m.sender, m.to_user)))
    return (m.sent_at.ToMilliseconds(), conv, m.seq)


async def test_search_pages_newest_first_across_conversations(peers):
    alice, bob = await peers.open("alice"), await peers.open("bob")
    await alice.join("one")
    await alice.join("two")
    sent = []
    for i in range(45):
        where = [{"room": "one"}, {"room": "two"}, {"to_user": "bob"}][i % 3]
        sent.append(await alice.send_and_ack(f"needle number {i}", **where))
        if i % 5 == 0:
            await alice.send_and_ack(f"hay {i}", room="one")
    hits = await everything(alice, "needle", limit=7)
    # Newest first by sent time; messages of the same millisecond by conversation, then seq.
    newest_first = sorted(sent, key=order, reverse=True)
    assert [h.message.text for h in hits] == [m.text for m in newest_first]
    first = await search(alice, "needle", limit=7)
    assert len(first.hits) == 7 and first.next_page_token
    # Default and largest page sizes.
    assert len((await search(alice, "needle")).hits) == 20
    assert len((await search(alice, "needle", limit=1000)).hits) == 45
    # Bob sees only the DMs.
    assert len(await everything(bob, "needle", limit=4)) == 15


async def test_search_within_a_conversation_pages_by_before_seq(peers):
    alice = await peers.open("alice")
    await alice.join("log")
    for i in range(12):
        await alice.send_and_ack(f"entry {i} found" if i % 2 else f"entry {i}", room="log")
    page = await search(alice, "found", room="log", limit=3)
    assert [h.message.seq for h in page.hits] == [12, 10, 8]
    below = await search(alice, "found", room="log", before_seq=8)
    assert [h.message.seq for h in below.hits] == [6, 4, 2]
    assert below.next_page_token == ""
    rest = await everything(alice, "found", room="log", limit=2)
    assert [h.message.seq for h in rest] == [12, 10, 8, 6, 4, 2]


async def test_a_hit_has_a_short_snippet_around_its_first_match(peers):
    alice = await peers.open("alice")
    await alice.join("general")
    long = " ".join(f"word{i}" for i in range(60)) + " TARGET here\nand " + "tail " * 40
    await alice.send_and_ack(long, room="general")
    await alice.send_and_ack("short target", room="general")
    hits = (await search(alice, "target")).hits
    assert hits[0].snippet == "short target"
    snip = hits[1].snippet
    assert "TARGET here and" in snip
    assert snip.startswith("…") and snip.endswith("…")
    assert len(snip) <= 100 and "\n" not in snip
    assert hits[1].message.text == long


@pytest.mark.parametrize(
    ("query", "fields", "says"),
    [
        ("", {}, "at least one word"),
        ("   ", {}, "at least one word"),
        ("!!! ?? --", {}, "at least one word"),
        ('"', {}, "at least one word"),
        ("a*", {}, "prefix"),
        ("x" * 300, {}, "longer than"),
        (" ".join("w" * 3 for _ in range(20)), {}, "more than"),
        ("bell\x07", {}, "control"),
        ("word", {"page_token": "garbage!"}, "page_token"),
        ("word", {"before_seq": 3}, "before_seq"),
        ("word", {"room": "Not A Room!"}, "room"),
        ("word", {"before_seq": 2**63}, "before_seq"),
    ],
)
async def test_bad_queries_are_refused_with_a_clear_message(peers, query, fields, says):
    alice = await peers.open("alice")
    await alice.join("general")
    await alice.send_and_ack("word", room="general")
    code, details = await refused(alice, query, **fields)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert says in details


@pytest.mark.parametrize("scope", [{"room": "general"}, {"with_user": "bob"}])
async def test_numbers_at_their_extremes_are_answered_or_refused_cleanly(peers, scope):
    alice = await peers.open("alice")
    await peers.token("bob")
    await alice.join("general")
    await alice.send_and_ack("extreme", room="general")
    await alice.send_and_ack("extreme", to_user="bob")
    for before_seq in (1, 2, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**63 - 1):
        page = await search(alice, "extreme", before_seq=before_seq, limit=2**32 - 1, **scope)
        assert len(page.hits) == (0 if before_seq == 1 else 1), before_seq
    code, details = await refused(alice, "extreme", before_seq=2**63, **scope)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "out of range" in details


async def test_searches_count_against_the_send_rate_limit():
    limits = Limits(rate_limit=0.1, rate_burst=4)  # a join, a send, two searches
    async with running_server("memory://", limits=limits) as server:
        group = Peers(target(server))
        try:
            alice = await group.open("alice")
            await alice.join("general")
            await alice.send_and_ack("one", room="general")
            await search(alice, "one")
            await search(alice, "one")
            code, details = await refused(alice, "one")
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate limit" in details
        finally:
            await group.close()


async def test_search_needs_a_valid_token(srv):
    ch = channel(target(srv))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.ChatServiceStub(ch).Search(pb.SearchRequest(query="x"), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await ch.close()


async def test_the_browser_adapter_serves_search_as_json(tmp_path):
    srv = ChatServer(make_config("memory://", web_port=0))
    await srv.start()
    group = Peers(target(srv))
    try:
        alice = await group.open("alice")
        await alice.join("general")
        await alice.send_and_ack("find me over http", room="general")
        async with aiohttp.ClientSession() as http:
            url = f"{web_url(srv)}/chatrpc.v1.ChatService/Search"
            headers = {"Authorization": f"Bearer {alice.token}"}
            async with http.post(url, json={"query": "HTTP find"}, headers=headers) as resp:
                assert resp.status == 200
                body = await resp.json()
            assert [h["message"]["text"] for h in body["hits"]] == ["find me over http"]
            assert body["hits"][0]["snippet"] == "find me over http"
            async with http.post(url, json={"query": "?!"}, headers=headers) as resp:
                assert resp.status == 400
                assert (await resp.json())["code"] == "invalid_argument"
            async with http.post(url, json={"query": "x", "room": "zz"}, headers=headers) as resp:
                assert resp.status == 404
    finally:
        await group.close()
        await srv.stop()
