"""Within one Chat session each conversation's seqs only grow, retried sends included.

Over gRPC against a real server on every store (memory, SQLite, Redis): a send
repeated in one session, a resend after a resume from 0, and a resend racing the
replay. The stream never repeats a message and never goes back: a retry whose
original the session is already past is answered by an ``ack`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatrpc.client import ChatClient, SendError
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb

from .conftest import WAIT, Peer, Peers, make_config, target
from .redis_fixture import RedisServer


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
async def peers(every_store: str) -> AsyncIterator[Peers]:
    srv = ChatServer(make_config(every_store))
    await srv.start()
    group = Peers(target(srv))
    try:
        yield group
    finally:
        await group.close()
        await srv.stop()


def conversation(msg: pb.Message | pb.Ack, me: str) -> str:
    """``#room`` or ``@peer``, as ``me`` sees it."""
    if msg.WhichOneof("target") == "room":
        return "#" + msg.room
    if isinstance(msg, pb.Ack) or msg.sender == me:
        return "@" + msg.to_user
    return "@" + msg.sender


def seqs(peer: Peer, conv: str) -> list[int]:
    return [m.seq for m in peer.messages() if conversation(m, peer.user) == conv]


def acks(peer: Peer) -> list[tuple[str, int, str]]:
    return [(conversation(a, peer.user), a.seq, a.client_msg_id) for a in peer.of("ack")]


def assert_strictly_increasing(peer: Peer) -> None:
    """Every conversation's messages on this stream: each seq once, never backwards;
    an ack only for a seq the stream is already past."""
    newest: dict[str, int] = {}
    for event in peer.events:
        kind = event.WhichOneof("event")
        if kind == "message":
            conv = conversation(event.message, peer.user)
            assert event.message.seq > newest.get(conv, 0), (conv, peer.describe())
            newest[conv] = event.message.seq
        elif kind == "ack":
            conv = conversation(event.ack, peer.user)
            assert event.ack.seq <= newest.get(conv, 0), (conv, peer.describe())


def has_message(peer: Peer, cid: str) -> bool:
    return any(m.client_msg_id == cid and m.sender == peer.user for m in peer.messages())


def has_ack(peer: Peer, cid: str) -> bool:
    return any(a.client_msg_id == cid for a in peer.of("ack"))


async def test_a_send_repeated_in_one_session_is_acked_not_delivered_again(
    peers: Peers,
) -> None:
    alice = await peers.open("alice")
    await peers.token("bob")
    await alice.join("r")
    # Written back to back: the server may commit them together.
    await alice.stream.send("one", room="r", client_msg_id="c1")
    await alice.stream.send("one", room="r", client_msg_id="c1")
    await alice.stream.send("two", room="r", client_msg_id="c2")
    await alice.stream.send("psst", to_user="bob", client_msg_id="d1")
    await alice.stream.send("psst", to_user="bob", client_msg_id="d1")
    await alice.wait_for(
        lambda ev: has_message(alice, "c2") and has_ack(alice, "c1") and has_ack(alice, "d1")
    )
    # One more send after the acks: everything before it was answered already.
    await alice.send_and_ack("three", room="r", client_msg_id="c3")
    assert seqs(alice, "#r") == [1, 2, 3]
    assert seqs(alice, "@bob") == [1]
    assert sorted(acks(alice)) == [("#r", 1, "c1"), ("@bob", 1, "d1")]
    assert_strictly_increasing(alice)


async def test_a_resend_after_a_resume_from_0_is_acked_after_the_replay(peers: Peers) -> None:
    first = await peers.open("alice")
    await first.join("r")
    await first.send_and_ack("one", room="r", client_msg_id="c1")
    await first.send_and_ack("two", room="r", client_msg_id="c2")
    await first.close()

    alice = await peers.open("alice")
    joined = await alice.join("r", after_seq=0)
    assert (joined.complete, joined.replayed) == (True, 2)
    await alice.stream.send("two", room="r", client_msg_id="c2")  # its echo was lost
    await alice.stream.send("three", room="r", client_msg_id="c3")
    await alice.wait_for(lambda ev: has_message(alice, "c3") and has_ack(alice, "c2"))
    assert seqs(alice, "#r") == [1, 2, 3]
    assert acks(alice) == [("#r", 2, "c2")]
    assert_strictly_increasing(alice)


async def test_a_resend_racing_the_replay_and_live_messages_keeps_the_order(
    peers: Peers,
) -> None:
    first = await peers.open("alice")
    await first.join("r")
    for i in range(1, 6):
        await first.send_and_ack(f"m{i}", room="r", client_msg_id=f"c{i}")
    await first.close()
    bob = await peers.open("bob")
    await bob.join("r")

    async def chatter() -> None:
        for i in range(30):
            await bob.stream.send(f"bob {i}", room="r", client_msg_id=f"b{i}")

    alice = await peers.open("alice")
    talking = asyncio.create_task(chatter())
    # No waiting between them: the resends race the replay and bob's messages.
    await alice.stream.join("r", after_seq=0)
    await alice.stream.send("m4", room="r", client_msg_id="c4")
    await alice.stream.send("m5", room="r", client_msg_id="c5")
    await alice.stream.send("m6", room="r", client_msg_id="c6")
    await talking
    await bob.wait_for(lambda ev: has_message(bob, "b29"))
    last = await bob.send_and_ack("done", room="r", client_msg_id="b-last")
    # The acks are pushed once alice's sends are committed: a message of bob's
    # committed in the same batch can reach her before them. Her new m6 and bob's
    # "done" come from two streams, so either may be committed first.
    await alice.wait_for(
        lambda ev: (
            has_message(alice, "c6")
            and any(m.client_msg_id == "b-last" for m in alice.messages())
            and len(acks(alice)) == 2
        )
    )
    # m1..m5, bob's 30, m6 and "done": each once, in seq order, none missing.
    assert seqs(alice, "#r") == list(range(1, 5 + 30 + 2 + 1))
    assert last.seq in (36, 37)
    assert sorted(acks(alice)) == [("#r", 4, "c4"), ("#r", 5, "c5")]
    assert_strictly_increasing(alice)
    assert_strictly_increasing(bob)


async def _resending_the_second_of_two_dms(peers: Peers) -> Peer:
    """alice sent bob two DMs on a session now closed; a new session of hers
    resends the second (its ack was lost) before anything else."""
    await peers.token("bob")
    first = await peers.open("alice")
    await first.send_and_ack("d one", to_user="bob", client_msg_id="d1")
    await first.send_and_ack("d two", to_user="bob", client_msg_id="d2")
    await first.close()
    alice = await peers.open("alice")
    await alice.stream.send("d two", to_user="bob", client_msg_id="d2")
    return alice


async def test_a_dm_resend_before_its_resume_is_not_filled_in_below(
    peers: Peers, every_store: str
) -> None:
    """The resend comes first (nothing of the DM delivered yet) and its original
    goes out: the resume from 0 then replays nothing below it but says it is not
    complete, so the client reads the older DM from History."""
    alice = await _resending_the_second_of_two_dms(peers)
    await alice.wait_for(lambda ev: has_message(alice, "d2") or has_ack(alice, "d2"))
    await alice.stream.resume_direct("bob", 0)
    await alice.wait_for(lambda ev: len(alice.of("joined")) == 1)
    [joined] = alice.of("joined")
    assert (joined.with_user, joined.last_seq) == ("bob", 2)
    shared = every_store.startswith("redis")
    if shared and joined.complete:
        # A store shared by servers may hand a new watch the DMs committed just
        # before it, live: both reached the session before the resume, which then
        # has nothing to replay and is complete.
        assert (joined.replayed, seqs(alice, "@bob")) == (0, [1, 2])
        assert acks(alice) in ([], [("@bob", 2, "d2")])
    else:
        assert (joined.complete, joined.replayed) == (False, 0)
        assert seqs(alice, "@bob") == [2]
        # There the watch may hand over only the newer DM, live, before the
        # resend is answered: the session is then past it, so the resend is acked.
        assert acks(alice) in (([], [("@bob", 2, "d2")]) if shared else ([],))
    assert_strictly_increasing(alice)


async def test_a_dm_resend_and_its_resume_together_give_each_dm_once(
    peers: Peers, every_store: str
) -> None:
    """The resend and the resume from 0 back to back: the resume may be answered
    before the resend's original goes out (it then replays both DMs, complete,
    and the resend is acked) or after (as above); either way each DM once, in order."""
    alice = await _resending_the_second_of_two_dms(peers)
    await alice.stream.resume_direct("bob", 0)
    await alice.wait_for(
        lambda ev: (
            len(alice.of("joined")) == 1 and (has_message(alice, "d2") or has_ack(alice, "d2"))
        )
    )
    [joined] = alice.of("joined")
    assert (joined.with_user, joined.last_seq) == ("bob", 2)
    if joined.complete:
        assert seqs(alice, "@bob") == [1, 2]
        assert acks(alice) in ([], [("@bob", 2, "d2")])
    else:
        assert (joined.replayed, seqs(alice, "@bob")) == (0, [2])
    assert_strictly_increasing(alice)

    # Resumed first, then resent: the replay has it, and the resend is acked.
    again = await peers.open("alice")
    await again.stream.resume_direct("bob", 0)
    await again.stream.send("d two", to_user="bob", client_msg_id="d2")
    await again.wait_for(lambda ev: has_ack(again, "d2"))
    [joined] = again.of("joined")
    assert (joined.complete, joined.replayed) == (True, 2)
    assert seqs(again, "@bob") == [1, 2]
    assert acks(again) == [("@bob", 2, "d2")]
    assert_strictly_increasing(again)


async def test_the_client_library_settles_a_resend_by_its_ack_and_shows_nothing_twice(
    peers: Peers,
) -> None:
    shown: list[pb.ServerEvent] = []
    client = ChatClient(peers.address, "alice", await peers.token("alice"), on_event=shown.append)
    await client.start()
    try:
        await client.join("r")
        first = await client.send("once", room="r", client_msg_id="same")
        again = await asyncio.wait_for(client.send("once", room="r", client_msg_id="same"), WAIT)
        assert (again.seq, again.room, again.sender, again.text) == (
            first.seq,
            "r",
            "alice",
            "once",
        )
        later = await client.send("later", room="r")
        kinds = [e.WhichOneof("event") for e in shown]
        assert "ack" not in kinds
        assert [e.message.seq for e in shown if e.WhichOneof("event") == "message"] == [
            first.seq,
            later.seq,
        ]
    finally:
        await client.aclose()


async def test_changes_repeated_in_one_session_are_acked_not_delivered_again(
    peers: Peers,
) -> None:
    alice = await peers.open("alice")
    await alice.join("r")
    await alice.send_and_ack("one", room="r", client_msg_id="c1")
    # Written back to back, each twice: stored once each, in order.
    for _ in range(2):
        await alice.stream.edit(1, "one!", room="r", client_msg_id="e1")
    for _ in range(2):
        await alice.stream.react(1, "👍", room="r", client_msg_id="r1")
    for _ in range(2):
        await alice.stream.delete(1, room="r", client_msg_id="x1")
    await alice.wait_for(lambda ev: has_ack(alice, "x1"))
    await alice.send_and_ack("two", room="r", client_msg_id="c2")
    assert seqs(alice, "#r") == [1, 2, 3, 4, 5]
    assert [m.kind for m in alice.messages()] == [
        pb.Message.MESSAGE,
        pb.Message.EDIT,
        pb.Message.REACTION,
        pb.Message.DELETE,
        pb.Message.MESSAGE,
    ]
    assert sorted(acks(alice)) == [("#r", 2, "e1"), ("#r", 3, "r1"), ("#r", 4, "x1")]
    assert not alice.of("error")
    assert_strictly_increasing(alice)


async def test_a_change_resent_after_a_resume_from_0_is_acked_after_the_replay(
    peers: Peers,
) -> None:
    first = await peers.open("alice")
    await first.join("r")
    await first.send_and_ack("one", room="r", client_msg_id="c1")
    await first.stream.react(1, "🎉", room="r", client_msg_id="r1")
    await first.stream.delete(1, room="r", client_msg_id="x1")
    await first.wait_for(lambda ev: len(first.messages()) == 3)
    await first.close()

    alice = await peers.open("alice")
    joined = await alice.join("r", after_seq=0)
    assert (joined.complete, joined.replayed) == (True, 3)
    # Their echoes were lost: resent, though the message is deleted by now.
    await alice.stream.react(1, "🎉", room="r", client_msg_id="r1")
    await alice.stream.delete(1, room="r", client_msg_id="x1")
    await alice.wait_for(lambda ev: has_ack(alice, "x1"))
    assert [(m.seq, m.kind, m.deleted) for m in alice.messages()] == [
        (1, pb.Message.MESSAGE, True),  # replayed from History: its current state
        (2, pb.Message.REACTION, False),
        (3, pb.Message.DELETE, False),
    ]
    assert acks(alice) == [("#r", 2, "r1"), ("#r", 3, "x1")]
    assert not alice.of("error")
    assert_strictly_increasing(alice)


async def test_the_client_library_stores_each_change_once_and_refuses_a_bad_one(
    peers: Peers,
) -> None:
    shown: list[pb.ServerEvent] = []
    client = ChatClient(peers.address, "alice", await peers.token("alice"), on_event=shown.append)
    await client.start()
    try:
        await client.join("r")
        first = await client.send("hi", room="r")
        reply = await client.send("and", room="r", reply_to=first.seq)
        edit = await client.edit(first.seq, "hi!", room="r", client_msg_id="e1")
        again = await asyncio.wait_for(
            client.edit(first.seq, "hi!", room="r", client_msg_id="e1"), WAIT
        )
        assert (again.seq, again.kind, again.target_seq) == (edit.seq, pb.Message.EDIT, 1)
        react = await client.react(first.seq, "👍", room="r")
        delete = await client.delete(first.seq, room="r", client_msg_id="x1")
        repeat = await asyncio.wait_for(
            client.delete(first.seq, room="r", client_msg_id="x1"), WAIT
        )
        assert repeat.seq == delete.seq == 5 and repeat.kind == pb.Message.DELETE
        with pytest.raises(SendError) as info:
            await client.react(first.seq, "👍", remove=True, room="r")
        assert info.value.error.code == pb.Error.FAILED_PRECONDITION
        assert "ack" not in [e.WhichOneof("event") for e in shown]
        got = [(e.message.seq, e.message.kind) for e in shown if e.WhichOneof("event") == "message"]
        assert got == [
            (1, pb.Message.MESSAGE),
            (2, pb.Message.MESSAGE),
            (3, pb.Message.EDIT),
            (4, pb.Message.REACTION),
            (5, pb.Message.DELETE),
        ]
        assert (reply.reply_to, react.emoji) == (1, "👍")
    finally:
        await client.aclose()
