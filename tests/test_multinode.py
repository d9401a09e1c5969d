"""Several chatrpc-server processes on one Redis act as one chat.

Two real ``chatrpc-server --store redis://...`` subprocesses share a real
redis-server (tests/redis_fixture.py): users on different servers chat in rooms
and by DM, resume on the other server, survive a killed server and a Redis
restart, and each sees every message once and in order.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from chatrpc.client import auth_metadata, channel, login, logout
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import WAIT, Peer, Peers, ServerProcess, start_server_process
from .redis_fixture import REDIS_SERVER, RedisServer, redis_server_in
from .test_durability import check_for_loss

pytestmark = pytest.mark.skipif(
    not REDIS_SERVER.exists(), reason=f"{REDIS_SERVER} is not installed (make test installs it)"
)


@dataclass
class Cluster:
    redis: RedisServer
    a: ServerProcess
    b: ServerProcess
    on_a: Peers
    on_b: Peers


def start_node(redis: RedisServer, log_dir: Path) -> ServerProcess:
    return start_server_process("--store", redis.url, "--log-level", "warning", log_dir=log_dir)


@pytest.fixture
def durable() -> bool:
    """Whether Redis fsyncs every write (for the tests that restart it)."""
    return False


@pytest.fixture
def redis(tmp_path: Path, durable: bool) -> Iterator[RedisServer]:
    with redis_server_in(tmp_path / "redis", durable=durable) as server:
        yield server


@pytest.fixture
async def cluster(redis: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    a = start_node(redis, tmp_path)
    try:
        b = start_node(redis, tmp_path)
        try:
            async with AsyncExitStack() as stack:
                on_a, on_b = Peers(a.address), Peers(b.address)
                on_b.tokens = on_a.tokens  # accounts are shared: one login serves both
                stack.push_async_callback(on_a.close)
                stack.push_async_callback(on_b.close)
                yield Cluster(redis, a, b, on_a, on_b)
        finally:
            b.stop(signal.SIGKILL)
    finally:
        a.stop(signal.SIGKILL)


def room_messages(peer: Peer, room: str) -> list[pb.Message]:
    return [m for m in peer.messages() if m.room == room]


def dm_messages(peer: Peer) -> list[pb.Message]:
    return [m for m in peer.messages() if m.to_user]


def seqs(messages: list[pb.Message]) -> list[int]:
    return [m.seq for m in messages]


def has_text(peer: Peer, text: str) -> Callable[[list[pb.ServerEvent]], bool]:
    return lambda ev: any(m.text == text for m in peer.messages())


def has_dms(peer: Peer, n: int) -> Callable[[list[pb.ServerEvent]], bool]:
    return lambda ev: len(dm_messages(peer)) >= n


def has_in_room(peer: Peer, room: str, n: int) -> Callable[[list[pb.ServerEvent]], bool]:
    return lambda ev: len(room_messages(peer, room)) >= n


async def test_users_on_two_servers_chat_in_a_room_and_by_dm_once_and_in_order(
    cluster: Cluster,
) -> None:
    alice = await cluster.on_a.open("alice")
    bob = await cluster.on_b.open("bob")
    await alice.join("general")
    await bob.join("general")

    n = 30
    for i in range(n):  # both send at once, without waiting for their echoes
        await alice.stream.send(f"a{i}", room="general", client_msg_id=f"a-{i}")
        await bob.stream.send(f"b{i}", room="general", client_msg_id=f"b-{i}")
        await alice.stream.send(f"da{i}", to_user="bob", client_msg_id=f"da-{i}")
        await bob.stream.send(f"db{i}", to_user="alice", client_msg_id=f"db-{i}")
    for peer in (alice, bob):
        await peer.wait_for(has_in_room(peer, "general", 2 * n))
        await peer.wait_for(has_dms(peer, 2 * n))
    for peer in (alice, bob):
        room = room_messages(peer, "general")
        assert seqs(room) == list(range(1, 2 * n + 1)), peer.user
        assert [m.text for m in room if m.sender == "alice"] == [f"a{i}" for i in range(n)]
        assert [m.text for m in room if m.sender == "bob"] == [f"b{i}" for i in range(n)]
        dms = dm_messages(peer)
        assert seqs(dms) == list(range(1, 2 * n + 1)), peer.user
        assert [m.text for m in dms if m.sender == "alice"] == [f"da{i}" for i in range(n)]
        assert [m.text for m in dms if m.sender == "bob"] == [f"db{i}" for i in range(n)]
    # Both servers stored the same thing: the room as seen from each is identical.
    assert [(m.seq, m.text) for m in room_messages(alice, "general")] == [
        (m.seq, m.text) for m in room_messages(bob, "general")
    ]


async def test_a_dm_to_a_user_on_the_other_server_arrives_live(cluster: Cluster) -> None:
    await cluster.on_b.token("bob")  # bob exists, with no session yet
    alice = await cluster.on_a.open("alice")
    bob = await cluster.on_b.open("bob")
    await bob.join("lobby")  # a round trip: bob's session is registered on B
    sent = await alice.send_and_ack("ping", to_user="bob")
    await bob.wait_for(lambda ev: any(m.text == "ping" for m in dm_messages(bob)))
    (got,) = dm_messages(bob)
    assert (got.seq, got.sender, got.to_user) == (sent.seq, "alice", "bob")


async def test_a_user_resumes_on_server_b_what_was_written_through_server_a(
    cluster: Cluster,
) -> None:
    alice = await cluster.on_a.open("alice")
    joined_a = await alice.join("general")
    for i in range(1, 6):
        await alice.send_and_ack(f"m{i}", room="general")
    await cluster.on_a.token("carol")
    for i in range(1, 4):
        await alice.send_and_ack(f"d{i}", to_user="carol")

    carol = await cluster.on_b.open("carol")
    joined = await carol.join("general", after_seq=2, epoch=joined_a.epoch)
    assert joined.epoch == joined_a.epoch
    assert (joined.last_seq, joined.complete, joined.replayed) == (5, True, 3)
    await carol.wait_for(lambda ev: len(room_messages(carol, "general")) >= 3)
    assert [m.text for m in room_messages(carol, "general")] == ["m3", "m4", "m5"]

    await carol.stream.resume_direct("alice", 1, joined_a.epoch)

    def resumed() -> list[pb.Joined]:
        return [j for j in carol.of("joined") if j.with_user == "alice"]

    def replayed() -> list[pb.Message]:
        at = next(i for i, e in enumerate(carol.events) if e.joined.with_user == "alice")
        return [e.message for e in carol.events[at:] if e.message.to_user]

    await carol.wait_for(lambda ev: bool(resumed()) and len(replayed()) >= resumed()[0].replayed)
    # Each once and in order. A DM committed within the watch margin (a few ms)
    # before carol's session began may come live before the resume (d1 too: new to
    # this session, older than the resume point). The replay never goes below it:
    # what it leaves out is older than that, and the resume says it is not complete.
    got = [(m.seq, m.text) for m in dm_messages(carol)]
    assert got == sorted(set(got)), got
    missing = {(2, "d2"), (3, "d3")} - set(got)
    if resumed()[0].complete:
        assert not missing, got
    else:
        assert missing and max(missing)[0] < got[0][0], got


async def test_a_client_whose_server_is_killed_resumes_on_the_other_without_loss_or_doubles(
    cluster: Cluster,
) -> None:
    alice = await cluster.on_a.open("alice")
    bob = await cluster.on_b.open("bob")
    joined = await alice.join("general")
    await bob.join("general")
    for i in range(10):
        await bob.send_and_ack(f"early{i}", room="general")
    last = await alice.send_and_ack("from a", room="general", client_msg_id="alice-1")
    await alice.wait_for(lambda ev: len(room_messages(alice, "general")) >= 11)
    seen_on_a = room_messages(alice, "general")

    cluster.a.stop(signal.SIGKILL)
    await alice.wait_end()
    for i in range(10):  # the chat goes on while alice is away
        await bob.send_and_ack(f"late{i}", room="general")

    again = await cluster.on_b.open("alice")
    rejoined = await again.join("general", after_seq=seen_on_a[-1].seq, epoch=joined.epoch)
    assert rejoined.complete
    # A retry of a send acknowledged on A is recognised on B: stored once.
    await again.stream.send("from a", room="general", client_msg_id="alice-1")
    await again.send_and_ack("from b", room="general", client_msg_id="alice-2")
    await again.wait_for(lambda ev: any(m.text == "from b" for m in again.messages()))
    got = room_messages(again, "general")
    # The retry's answer: an ack, as this session replayed past it (not 11 again).
    assert [(a.seq, a.client_msg_id) for a in again.of("ack")] == [(11, "alice-1")]
    assert [m.seq for m in got if m.client_msg_id == "alice-1"] == []
    everything = seen_on_a + got
    assert seqs(everything) == list(range(1, 23))
    texts = [m.text for m in everything]
    assert texts == [f"early{i}" for i in range(10)] + ["from a"] + [
        f"late{i}" for i in range(10)
    ] + ["from b"]
    assert last.seq == 11
    # Bob, on the server that stayed, saw it all once as well.
    await bob.wait_for(lambda ev: any(m.text == "from b" for m in bob.messages()))
    assert seqs(room_messages(bob, "general")) == list(range(1, 23))


async def send_until_stored(peer: Peer, text: str, room: str, cid: str) -> pb.Message:
    """Sends with one client_msg_id until it is acknowledged; errors must be UNAVAILABLE."""

    def errors() -> list[pb.Error]:
        return [e for e in peer.of("error") if e.client_msg_id == cid]

    def acked() -> list[pb.Message]:
        return [m for m in peer.messages() if m.client_msg_id == cid and m.sender == peer.user]

    def answered(errors_before: int) -> Callable[[list[pb.ServerEvent]], bool]:
        return lambda ev: bool(acked()) or len(errors()) > errors_before

    async def attempts() -> pb.Message:
        while True:
            before = len(errors())
            await peer.stream.send(text, room=room, client_msg_id=cid)
            await peer.wait_for(answered(before))
            if acked():
                return acked()[0]
            assert errors()[-1].code == pb.Error.UNAVAILABLE, errors()[-1]
            # No event tells when Redis is back: retry the send (as a client would).
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(attempts(), 3 * WAIT)


@pytest.mark.parametrize("durable", [True])
async def test_a_redis_restart_gives_retryable_errors_and_loses_nothing_acknowledged(
    cluster: Cluster,
) -> None:
    alice = await cluster.on_a.open("alice")
    bob = await cluster.on_b.open("bob")
    await alice.join("general")
    await bob.join("general")
    for i in range(5):
        await alice.send_and_ack(f"before{i}", room="general")

    cluster.redis.kill()
    await alice.stream.send("during", room="general", client_msg_id="during-1")
    error = await alice.error_for("during-1")
    assert error.code == pb.Error.UNAVAILABLE, error

    cluster.redis.start()  # same port, same append-only file
    stored = await send_until_stored(alice, "during", "general", "during-1")
    after_b = await send_until_stored(bob, "after", "general", "after-1")
    assert after_b.seq == stored.seq + 1

    expected = [f"before{i}" for i in range(5)] + ["during", "after"]
    for peer in (alice, bob):
        await peer.wait_for(has_text(peer, "after"))
        room = room_messages(peer, "general")
        assert [m.text for m in room] == expected, peer.user
        assert seqs(room) == list(range(1, 8)), peer.user
    # A fresh session on either server reads the same history.
    for peers in (cluster.on_a, cluster.on_b):
        carol = await peers.open("carol")
        await carol.join("general", after_seq=0)
        await carol.wait_for(has_in_room(carol, "general", 7))
        assert [m.text for m in room_messages(carol, "general")] == expected


async def online_entries(redis: RedisServer, room: str) -> list[str]:
    """The ``node|user`` entries of a room's online set, expired ones included."""
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        return [str(m) for m in await client.zrange(f"chatrpc:online:{room}", 0, -1)]
    finally:
        await client.aclose()


async def test_presence_crosses_servers_and_a_killed_servers_users_drop_out(
    redis: RedisServer, tmp_path: Path
) -> None:
    args = ("--store", redis.url, "--presence-ttl", "1.5", "--log-level", "warning")
    a = start_server_process(*args, log_dir=tmp_path)
    b = start_server_process(*args, log_dir=tmp_path)
    on_a, on_b = Peers(a.address), Peers(b.address)
    on_b.tokens = on_a.tokens
    ch = channel(a.address)
    stub = pb_grpc.ChatServiceStub(ch)

    def saw(peer: Peer, user: str, kind: int, times: int = 1) -> Callable[..., bool]:
        return lambda ev: (
            sum(p.user == user and p.kind == kind for p in peer.of("presence")) >= times
        )

    async def members_on_a(token: str) -> list[str]:
        reply = await stub.ListMembers(
            pb.ListMembersRequest(room="lobby"), metadata=auth_metadata(token)
        )
        return list(reply.members)

    try:
        alice = await on_a.open("alice")
        await alice.join("lobby")
        bob = await on_b.open("bob")
        joined = await bob.join("lobby")
        assert list(joined.members) == ["alice", "bob"]  # alice is on the other server
        await alice.wait_for(saw(alice, "bob", pb.Presence.JOINED))
        assert await members_on_a(alice.token) == ["alice", "bob"]
        # Leaving on B is announced on A.
        await bob.stream.leave("lobby")
        await alice.wait_for(saw(alice, "bob", pb.Presence.LEFT))
        assert await members_on_a(alice.token) == ["alice"]
        # bob comes back, then his server dies without a word: the heartbeats stop,
        # and A announces him gone once his entry expires (within the presence TTL
        # and a heartbeat), then lists him no more.
        await bob.join("lobby")
        await alice.wait_for(saw(alice, "bob", pb.Presence.JOINED, times=2))
        killed = asyncio.get_running_loop().time()
        b.stop(signal.SIGKILL)
        await alice.wait_for(saw(alice, "bob", pb.Presence.LEFT, times=2))
        assert asyncio.get_running_loop().time() - killed < 1.5 + 1.5
        assert await members_on_a(alice.token) == ["alice"]
        # Announced once, not at every heartbeat while the entry lingers: once it is
        # gone from Redis, carol's arrival comes after anything A announced before.
        deadline = asyncio.get_running_loop().time() + WAIT
        while any(m.endswith("|bob") for m in await online_entries(redis, "lobby")):
            assert asyncio.get_running_loop().time() < deadline, "bob's entry stayed"
            await asyncio.sleep(0.1)
        carol = await on_a.open("carol")
        await carol.join("lobby")
        await alice.wait_for(saw(alice, "carol", pb.Presence.JOINED))
        lefts = [p for p in alice.of("presence") if p.user == "bob" and p.kind == pb.Presence.LEFT]
        assert len(lefts) == 2
    finally:
        await ch.close()
        await on_a.close()
        await on_b.close()
        b.stop(signal.SIGKILL)
        a.stop(signal.SIGKILL)


async def test_a_user_on_two_other_servers_leaves_the_room_when_the_last_session_goes(
    redis: RedisServer, tmp_path: Path
) -> None:
    """bob in #lobby through B and C: leaving on B changes nothing for alice on A;
    leaving on C too is announced, once."""
    args = ("--store", redis.url, "--log-level", "warning")
    nodes = [start_server_process(*args, log_dir=tmp_path) for _ in range(3)]
    on_a, on_b, on_c = (Peers(n.address) for n in nodes)
    on_b.tokens = on_c.tokens = on_a.tokens

    def presence(peer: Peer) -> list[tuple[str, int]]:
        return [(p.user, p.kind) for p in peer.of("presence")]

    try:
        alice = await on_a.open("alice")
        await alice.join("lobby")
        bob_b = await on_b.open("bob")
        await bob_b.join("lobby")
        bob_c = await on_c.open("bob")
        await bob_c.join("lobby")
        await alice.wait_for(lambda _: ("bob", pb.Presence.JOINED) in presence(alice))
        # Both servers have reported bob (reports from two servers have no order).
        deadline = asyncio.get_running_loop().time() + WAIT
        while sum(m.endswith("|bob") for m in await online_entries(redis, "lobby")) < 2:
            assert asyncio.get_running_loop().time() < deadline, "bob's entries are missing"
            await asyncio.sleep(0.05)
        await bob_b.stream.leave("lobby")
        await bob_b.wait_for(lambda _: bool(bob_b.of("left")))
        # A has read B's report of bob leaving once carol's join, reported after it
        # by the same server, is announced.
        carol = await on_b.open("carol")
        await carol.join("lobby")
        await alice.wait_for(lambda _: ("carol", pb.Presence.JOINED) in presence(alice))
        assert ("bob", pb.Presence.LEFT) not in presence(alice)
        await bob_c.stream.leave("lobby")
        await alice.wait_for(lambda _: ("bob", pb.Presence.LEFT) in presence(alice))
        assert presence(alice).count(("bob", pb.Presence.JOINED)) == 1
        # carol, on B, opens a session on A too, then closes it: A's sessions are
        # told nothing, as she never left the room (erin's arrival comes after).
        carol_a = await on_a.open("carol")
        await carol_a.join("lobby")
        await carol_a.stream.leave("lobby")
        await carol_a.wait_for(lambda _: bool(carol_a.of("left")))
        erin = await on_a.open("erin")
        await erin.join("lobby")
        await alice.wait_for(lambda _: ("erin", pb.Presence.JOINED) in presence(alice))
        assert [e for e in presence(alice) if e[0] == "carol"] == [("carol", pb.Presence.JOINED)]
    finally:
        for group in (on_a, on_b, on_c):
            await group.close()
        for node in nodes:
            node.stop(signal.SIGKILL)


async def test_logout_on_one_server_ends_the_sessions_of_that_token_on_the_other(
    cluster: Cluster,
) -> None:
    ch = channel(cluster.a.address)
    try:
        t1 = await cluster.on_a.token("alice")
        t2 = (await login(ch, "alice", token=t1)).token
        phone_on_b = await cluster.on_b.open("alice", token=t1)
        laptop_on_b = await cluster.on_b.open("alice", token=t2)
        await phone_on_b.join("general")
        await laptop_on_b.join("general")
        out = await logout(ch, t1)  # through A, where alice has no session
        assert (out.revoked_tokens, out.ended_sessions) == (1, 0)
        assert await phone_on_b.wait_end() == grpc.StatusCode.UNAUTHENTICATED
        await laptop_on_b.send_and_ack("still here", room="general")
        # Everywhere: every token, every session on every server.
        tablet_on_a = await cluster.on_a.open("alice", token=t2)
        await tablet_on_a.join("general")
        out = await logout(ch, t2, all_sessions=True)
        assert (out.revoked_tokens, out.ended_sessions) == (1, 1)
        assert await tablet_on_a.wait_end() == grpc.StatusCode.UNAUTHENTICATED
        assert await laptop_on_b.wait_end() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await ch.close()


@pytest.mark.timeout(600)
async def test_loss_checker_across_two_servers_one_of_them_killed(
    redis: RedisServer, tmp_path: Path
) -> None:
    """The loss checker of test_durability over two server processes on one Redis:
    messages cross servers, links drop, readers stall, and a third of the way in
    one server is SIGKILLed and its clients fail over to the other. Every client's
    view of every room still equals History: nothing lost, nothing doubled."""
    args = ("--store", redis.url, "--queue-size", "16", "--log-level", "warning")
    a = start_server_process(*args, log_dir=tmp_path)
    b = start_server_process(*args, log_dir=tmp_path)

    async def state_of_a() -> str:
        # SIGUSR1: the server logs what its sessions and tasks are doing.
        a.proc.send_signal(signal.SIGUSR1)
        deadline = asyncio.get_running_loop().time() + WAIT
        while "state:" not in a.stderr_path.read_text():
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        return "server A:\n" + a.stderr_path.read_text()[-30_000:]

    try:
        await check_for_loss(
            [a.port, b.port], kill_last=lambda: b.stop(signal.SIGKILL), server_state=state_of_a
        )
    finally:
        b.stop(signal.SIGKILL)
        a.stop(signal.SIGKILL)


async def test_edits_reactions_and_deletes_cross_servers_live_and_erase_everywhere(
    cluster: Cluster,
) -> None:
    alice = await cluster.on_a.open("alice")
    bob = await cluster.on_b.open("bob")
    await alice.join("general")
    await bob.join("general")
    await alice.send_and_ack("a secret typo", room="general")
    await alice.stream.edit(1, "a secret, fixed", room="general", client_msg_id="e-1")
    await bob.wait_for(lambda ev: len(room_messages(bob, "general")) == 2)  # then the reaction
    await bob.stream.react(1, "👀", room="general", client_msg_id="r-1")
    await alice.stream.send("to you", to_user="bob", client_msg_id="d-1")
    await alice.stream.edit(1, "to you, bob", to_user="bob", client_msg_id="d-2")
    await alice.wait_for(lambda ev: len(room_messages(alice, "general")) == 3)
    await alice.stream.delete(1, room="general", client_msg_id="x-1")
    await bob.wait_for(lambda ev: len(bob.messages()) == 6)
    assert [(m.seq, m.kind) for m in room_messages(bob, "general")] == [
        (1, pb.Message.MESSAGE),
        (2, pb.Message.EDIT),
        (3, pb.Message.REACTION),
        (4, pb.Message.DELETE),
    ]
    dm = [m for m in bob.messages() if not m.room]
    assert [(m.seq, m.kind, m.text) for m in dm] == [
        (1, pb.Message.MESSAGE, "to you"),
        (2, pb.Message.EDIT, "to you, bob"),
    ]
    # History through either server: the current state, the deleted text gone.
    stub = pb_grpc.ChatServiceStub(bob.ch)
    page = await stub.History(
        pb.HistoryRequest(room="general"), metadata=auth_metadata(bob.token), timeout=WAIT
    )
    assert page.messages[0].deleted and not page.messages[0].text
    keys = aioredis.Redis.from_url(cluster.redis.url)
    try:
        for key in await keys.keys("*"):
            if await keys.type(key) == b"hash":
                values = await keys.hvals(key)
                assert not any(b"secret" in v for v in values), key
    finally:
        await keys.aclose()
