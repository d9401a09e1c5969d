"""Typing notices and read markers on a real server (memory, SQLite and Redis stores).

Typing goes live to the other members only, throttled and droppable; read
markers only move forward, reach the user's other sessions and a DM's peer, and
drive the unread and mention counts of ListRooms and ListDirects.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from chatrpc.client import auth_metadata
from chatrpc.hub import Limits
from chatrpc.live import TypingNotice
from chatrpc.store import UNREAD_CAP
from chatrpc.subscriber import Left, Session
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, running_server, target
from .redis_fixture import RedisServer


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The server of these tests runs on every store (a flushed Redis for each test)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'chat.db'}"
    redis: RedisServer = request.getfixturevalue("redis_server")
    redis.flush()
    return redis.url


def typing_events(peer: Peer) -> list[pb.UserTyping]:
    return list(peer.of("typing"))


def markers(peer: Peer) -> list[pb.ReadMarker]:
    return list(peer.of("read_marker"))


async def typing(peer: Peer, *, room: str = "", to_user: str = "") -> None:
    event = pb.Typing(room=room) if room else pb.Typing(to_user=to_user)
    await peer.stream.write(pb.ClientEvent(typing=event))


async def mark_read(peer: Peer, seq: int, *, room: str = "", to_user: str = "") -> None:
    event = pb.MarkRead(room=room, seq=seq) if room else pb.MarkRead(to_user=to_user, seq=seq)
    await peer.stream.write(pb.ClientEvent(mark_read=event))


async def next_error(peer: Peer, before: int) -> pb.Error:
    """The first error event after the first ``before`` ones."""
    await peer.wait_for(lambda ev: len(peer.of("error")) > before)
    err: pb.Error = peer.of("error")[before]
    return err


def _saw(peer: Peer, text: str, events: object) -> bool:
    return text in peer.texts()


async def list_rooms(peer: Peer, prefix: str = "") -> dict[str, pb.Room]:
    stub = pb_grpc.ChatServiceStub(peer.ch)
    answer = await stub.ListRooms(
        pb.ListRoomsRequest(prefix=prefix), metadata=auth_metadata(peer.token)
    )
    return {r.name: r for r in answer.rooms}


async def list_directs(peer: Peer) -> dict[str, pb.Direct]:
    stub = pb_grpc.ChatServiceStub(peer.ch)
    answer = await stub.ListDirects(pb.ListDirectsRequest(), metadata=auth_metadata(peer.token))
    return {d.with_user: d for d in answer.directs}


# -- typing ------------------------------------------------------------------------------


async def test_typing_in_a_room_reaches_the_other_members_only(peers: Peers) -> None:
    alice, alice2 = await peers.open("alice"), await peers.open("alice")
    bob, carol = await peers.open("bob"), await peers.open("carol")
    for p in (alice, alice2, bob):
        await p.join("general")
    await carol.join("elsewhere")
    await typing(alice, room="general")
    await bob.wait_for(lambda ev: bool(typing_events(bob)))
    assert typing_events(bob) == [pb.UserTyping(room="general", user="alice")]
    # A message after it shows the others got none: events arrive in order.
    await alice.send_and_ack("hi", room="general")
    await alice.send_and_ack("fence", to_user="carol")
    await alice2.wait_for(lambda ev: "hi" in alice2.texts())
    await carol.wait_for(lambda ev: "fence" in carol.texts())
    assert typing_events(alice) == typing_events(alice2) == typing_events(carol) == []


async def test_typing_is_relayed_once_per_user_and_conversation_every_few_seconds(
    peers: Peers,
) -> None:
    alice, bob = await peers.open("alice"), await peers.open("bob")
    await alice.join("general")
    await bob.join("general")
    for _ in range(5):
        await typing(alice, room="general")
    await typing(alice, to_user="bob")  # another conversation: its own throttle
    await alice.send_and_ack("done typing", room="general")
    await bob.wait_for(lambda ev: "done typing" in bob.texts())
    assert typing_events(bob) == [
        pb.UserTyping(room="general", user="alice"),
        pb.UserTyping(with_user="alice", user="alice"),
    ]
    assert alice.of("error") == []  # dropped notices are not errors


async def test_typing_in_a_dm_reaches_the_peer_and_not_the_typists_other_sessions(
    peers: Peers,
) -> None:
    alice, alice2, bob = (
        await peers.open("alice"),
        await peers.open("alice"),
        await peers.open("bob"),
    )
    await typing(alice, to_user="bob")
    await bob.wait_for(lambda ev: bool(typing_events(bob)))
    assert typing_events(bob) == [pb.UserTyping(with_user="alice", user="alice")]
    await alice.send_and_ack("psst", to_user="bob")
    await alice2.wait_for(lambda ev: "psst" in alice2.texts())
    assert typing_events(alice2) == []


async def test_typing_to_a_room_not_joined_an_unknown_user_or_nothing_is_an_error(
    peers: Peers,
) -> None:
    alice = await peers.open("alice")
    await peers.token("bob")
    await typing(alice, room="general")
    err = await next_error(alice, 0)
    assert err.code == pb.Error.FAILED_PRECONDITION and "join #general" in err.message
    await typing(alice, to_user="nobody")
    err = await next_error(alice, 1)
    assert err.code == pb.Error.NOT_FOUND and "nobody" in err.message
    await typing(alice, room="Bad Name!")
    err = await next_error(alice, 2)
    assert err.code == pb.Error.INVALID_ARGUMENT
    await alice.stream.write(pb.ClientEvent(typing=pb.Typing()))
    err = await next_error(alice, 3)
    assert err.code == pb.Error.INVALID_ARGUMENT and "room or a to_user" in err.message
    # The session goes on.
    await alice.join("general")
    await alice.send_and_ack("still here", room="general")


async def test_a_flood_of_typing_is_held_to_the_rate_and_never_costs_a_send() -> None:
    async with running_server("memory://", limits=Limits(rate_limit=1, rate_burst=4)) as srv:
        group = Peers(target(srv))
        try:
            watchers = [await group.open(f"u{i}") for i in range(8)]
            for w in watchers:
                await w.join("fence")
            alice = await group.open("alice")
            await alice.join("fence")
            for w in watchers:
                await typing(alice, to_user=w.user)
            for i in range(3):  # the send budget is untouched by the typing
                await alice.send_and_ack(f"m{i}", room="fence")
            for w in watchers:  # what was relayed came before the messages
                await w.wait_for(functools.partial(_saw, w, "m2"))
            relayed = sum(len(typing_events(w)) for w in watchers)
            assert 4 <= relayed <= 5  # the typing burst, and at most a token of refill
            assert alice.of("error") == []
        finally:
            await group.close()


# -- read markers ------------------------------------------------------------------------


async def test_a_read_marker_reaches_the_users_other_sessions_and_only_moves_forward(
    peers: Peers,
) -> None:
    alice, alice2, bob = (
        await peers.open("alice"),
        await peers.open("alice"),
        await peers.open("bob"),
    )
    for p in (alice, alice2, bob):
        await p.join("general")
    for i in range(4):
        await bob.send_and_ack(f"m{i}", room="general")
    await mark_read(alice, 2, room="general")
    await alice2.wait_for(lambda ev: bool(markers(alice2)))
    assert markers(alice2) == [pb.ReadMarker(room="general", user="alice", seq=2)]
    await mark_read(alice, 2, room="general")  # equal: nothing
    await mark_read(alice, 1, room="general")  # lower: nothing
    await mark_read(alice, 4, room="general")
    await alice2.wait_for(lambda ev: len(markers(alice2)) == 2)
    assert [m.seq for m in markers(alice2)] == [2, 4]
    # The marking session is not told again, and other members never are.
    await bob.send_and_ack("fence", room="general")
    await alice.wait_for(lambda ev: "fence" in alice.texts())
    assert markers(alice) == [] and markers(bob) == []
    assert alice.of("error") == []
    # A new session learns it as it joins.
    alice3 = await peers.open("alice")
    joined = await alice3.join("general")
    assert joined.read_seq == 4 and joined.peer_read_seq == 0


async def test_in_a_dm_the_peer_sees_how_far_the_other_has_read(peers: Peers) -> None:
    alice, bob, bob2 = await peers.open("alice"), await peers.open("bob"), await peers.open("bob")
    for i in range(3):
        await alice.send_and_ack(f"d{i}", to_user="bob")
    await mark_read(bob, 3, to_user="alice")
    await alice.wait_for(lambda ev: bool(markers(alice)))
    assert markers(alice) == [pb.ReadMarker(with_user="bob", user="bob", seq=3)]
    await bob2.wait_for(lambda ev: bool(markers(bob2)))
    assert markers(bob2) == [pb.ReadMarker(with_user="alice", user="bob", seq=3)]
    resumed = pb.Join(with_user="bob", after_seq=3)
    await alice.stream.write(pb.ClientEvent(join=resumed))
    await alice.wait_for(lambda ev: bool(alice.of("joined")))
    joined = alice.of("joined")[0]
    assert joined.with_user == "bob" and joined.read_seq == 0 and joined.peer_read_seq == 3


async def test_mark_read_of_a_bad_seq_an_unknown_room_or_user_or_a_room_not_joined_is_an_error(
    peers: Peers,
) -> None:
    alice, bob = await peers.open("alice"), await peers.open("bob")
    await bob.join("general")
    await bob.send_and_ack("one", room="general")
    await mark_read(alice, 1, room="general")  # a room alice never joined
    err = await next_error(alice, 0)
    assert err.code == pb.Error.FAILED_PRECONDITION and "join #general" in err.message
    await mark_read(alice, 1, room="nowhere")  # a room nobody made: the same answer
    err = await next_error(alice, 1)
    assert err.code == pb.Error.FAILED_PRECONDITION and "join #nowhere" in err.message
    await mark_read(alice, 1, to_user="nobody")
    err = await next_error(alice, 2)
    assert err.code == pb.Error.NOT_FOUND
    await alice.join("general")
    await mark_read(alice, 2, room="general")  # past the newest seq
    err = await next_error(alice, 3)
    assert err.code == pb.Error.INVALID_ARGUMENT and "past the newest" in err.message
    await mark_read(alice, 2**64 - 1, room="general")
    err = await next_error(alice, 4)
    assert err.code == pb.Error.INVALID_ARGUMENT
    await alice.stream.write(pb.ClientEvent(mark_read=pb.MarkRead(seq=1)))
    err = await next_error(alice, 5)
    assert err.code == pb.Error.INVALID_ARGUMENT and "room or a to_user" in err.message
    await mark_read(alice, 1, room="general")  # the session goes on
    await alice.join("general")  # answered once the mark before it is stored
    rooms = await list_rooms(alice)
    assert rooms["general"].read_seq == 1


async def test_marks_have_a_budget_of_their_own_that_never_costs_a_send() -> None:
    # A send every 10 s, two at once; marks: one a second, twenty at once.
    async with running_server("memory://", limits=Limits(rate_limit=0.1, rate_burst=2)) as srv:
        group = Peers(target(srv))
        try:
            bob = await group.open("bob")
            await bob.join("general")
            await bob.send_and_ack("zero", room="general")
            alice = await group.open("alice")
            await alice.join("general")
            for _ in range(18):  # as a tenth of a send each, 1.8 of the 1.9 left
                await mark_read(alice, 1, room="general")
            # The marks took nothing from the send budget: its one send goes out.
            await alice.send_and_ack("one", room="general", client_msg_id="c-1")
            for _ in range(25):  # past the marks' own burst
                await mark_read(alice, 1, room="general")
            err = await next_error(alice, 0)
            assert err.code == pb.Error.RESOURCE_EXHAUSTED
            assert "rate limit" in err.message
        finally:
            await group.close()


async def test_rooms_and_directs_list_the_callers_unread_messages_and_mentions(
    peers: Peers,
) -> None:
    alice, bob, carol = (
        await peers.open("alice"),
        await peers.open("bob"),
        await peers.open("carol"),
    )
    await alice.join("general")
    await bob.join("general")
    await carol.join("other")
    await bob.send_and_ack("hello all", room="general")
    await bob.send_and_ack("@alice look", room="general")
    await alice.send_and_ack("mine, @alice", room="general")  # own: never unread
    await bob.send_and_ack("@alicex and bob@alice are not mentions", room="general")
    await bob.send_and_ack("thanks @ALICE.", room="general")
    rooms = await list_rooms(alice)
    assert (rooms["general"].unread, rooms["general"].mentions) == (4, 2)
    assert rooms["general"].read_seq == 0 and rooms["general"].last_seq == 5
    assert (rooms["other"].unread, rooms["other"].read_seq) == (0, 0)
    await mark_read(alice, 2, room="general")
    await mark_read(alice, 0, room="general")  # 0: nothing read, nothing changes
    await alice.join("general")  # answered once the marks before it are stored
    rooms = await list_rooms(alice, prefix="gen")
    assert (rooms["general"].unread, rooms["general"].mentions) == (2, 1)
    assert rooms["general"].read_seq == 2
    # Carol is no member of general: nothing counts for her there.
    theirs = await list_rooms(carol)
    assert (theirs["general"].unread, theirs["general"].read_seq) == (0, 0)
    assert (theirs["other"].unread, theirs["other"].mentions) == (0, 0)

    await bob.send_and_ack("dm one", to_user="alice")
    await bob.send_and_ack("dm two @alice", to_user="alice")
    await alice.send_and_ack("dm three", to_user="bob")
    await mark_read(bob, 3, to_user="alice")
    await alice.wait_for(lambda ev: bool(markers(alice)))
    directs = await list_directs(alice)
    bob_dm = directs["bob"]
    assert (bob_dm.unread, bob_dm.mentions, bob_dm.read_seq) == (2, 1, 0)
    assert (bob_dm.peer_read_seq, bob_dm.last_seq) == (3, 3)
    await mark_read(alice, 1, to_user="bob")
    await bob.wait_for(lambda ev: bool(markers(bob)))
    directs = await list_directs(alice)
    assert (directs["bob"].unread, directs["bob"].mentions, directs["bob"].read_seq) == (1, 1, 1)


async def test_unread_counts_stop_at_the_cap(peers: Peers) -> None:
    alice, bob = await peers.open("alice"), await peers.open("bob")
    await alice.join("big")
    await bob.join("big")
    total = UNREAD_CAP + 5
    for i in range(total):
        await bob.stream.send(f"m{i}", room="big", client_msg_id=f"big-{i}")
    await alice.wait_for(lambda ev: len(alice.messages()) == total, timeout=60)
    rooms = await list_rooms(alice)
    assert rooms["big"].unread == UNREAD_CAP and rooms["big"].last_seq == total
    await mark_read(alice, 10, room="big")
    await mark_read(alice, total - 3, room="big")
    await alice.join("big")  # answered once the marks before it are stored
    rooms = await list_rooms(alice)
    assert rooms["big"].unread == 3 and rooms["big"].read_seq == total - 3


def test_a_session_with_a_half_full_queue_drops_typing_rather_than_be_cut_off() -> None:
    session = Session("bob", max_queue=4)
    notice = TypingNotice("alice", room="general")
    assert session.offer(notice)
    assert session.push(Left("x"))
    assert not session.offer(notice)  # half full: dropped
    assert not session.overflowed and session.dropped == 1
    assert session.push(Left("y")) and session.push(Left("z"))  # the bound is intact
    assert not session.push(Left("w")) and session.overflowed


async def test_counts_asked_again_are_the_same_until_something_changes(peers: Peers) -> None:
    alice, bob = await peers.open("alice"), await peers.open("bob")
    await alice.join("general")
    await bob.join("general")
    await bob.send_and_ack("one @alice", room="general")
    first = await list_rooms(alice)
    assert await list_rooms(alice) == first
    assert (first["general"].unread, first["general"].mentions) == (1, 1)
    await bob.send_and_ack("two", room="general")  # a new newest seq: counted again
    again = await list_rooms(alice)
    assert (again["general"].unread, again["general"].mentions) == (2, 1)
    await bob.send_and_ack("three", to_user="alice")
    directs = await list_directs(alice)
    assert directs["bob"].unread == 1
    await bob.send_and_ack("four @alice", to_user="alice")
    directs = await list_directs(alice)
    assert (directs["bob"].unread, directs["bob"].mentions) == (2, 1)
