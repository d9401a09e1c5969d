"""Routing through a real server: rooms, DMs, sessions, presence, slow readers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from chatrpc.client import auth_metadata
from chatrpc.hub import Limits
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, end_status, running_server, target


def _saw(peer: Peer, text: str) -> Callable[[list[pb.ServerEvent]], bool]:
    return lambda events: text in peer.texts()


def _pairs(peer_msgs: list[pb.Message]) -> list[tuple[str, str, str]]:
    return [(m.room or "@" + m.to_user, m.sender, m.text) for m in peer_msgs]


async def test_three_users_in_two_rooms_with_dms_see_exactly_their_messages(peers: Peers) -> None:
    alice = await peers.open("alice")
    bob = await peers.open("bob")
    carol = await peers.open("carol")
    dave = await peers.open("dave")
    for p in (alice, bob):
        await p.join("red")
    for p in (bob, carol):
        await p.join("blue")
    await dave.join("green")

    await alice.send_and_ack("a1", room="red")
    await bob.send_and_ack("b1", room="red")
    await bob.send_and_ack("b2", room="blue")
    await carol.send_and_ack("c1", room="blue")
    await alice.send_and_ack("psst carol", to_user="carol")
    await carol.send_and_ack("psst alice", to_user="alice")
    await bob.send_and_ack("a2", room="red")

    def texts_when(p, n):
        return p.wait_for(lambda ev: len(p.messages()) >= n)

    await texts_when(alice, 5)
    await texts_when(bob, 5)
    await texts_when(carol, 4)
    assert _pairs(alice.messages()) == [
        ("red", "alice", "a1"),
        ("red", "bob", "b1"),
        ("@carol", "alice", "psst carol"),
        ("@alice", "carol", "psst alice"),
        ("red", "bob", "a2"),
    ]
    assert _pairs(bob.messages()) == [
        ("red", "alice", "a1"),
        ("red", "bob", "b1"),
        ("blue", "bob", "b2"),
        ("blue", "carol", "c1"),
        ("red", "bob", "a2"),
    ]
    assert _pairs(carol.messages()) == [
        ("blue", "bob", "b2"),
        ("blue", "carol", "c1"),
        ("@carol", "alice", "psst carol"),
        ("@alice", "carol", "psst alice"),
    ]
    # Seqs count per conversation: red 1..3, blue 1..2, the DM 1..2.
    assert [m.seq for m in alice.messages()] == [1, 2, 1, 2, 3]
    # dave, in no shared room, sees nothing of anyone's messages or DMs.
    await dave.send_and_ack("anyone?", room="green")
    assert _pairs(dave.messages()) == [("green", "dave", "anyone?")]


async def test_a_dm_reaches_every_session_of_both_users_and_nobody_else(peers: Peers) -> None:
    a1 = await peers.open("alice")
    a2 = await peers.open("alice")
    b1 = await peers.open("bob")
    b2 = await peers.open("bob")
    eve = await peers.open("eve")
    await eve.join("general")
    await a1.send_and_ack("hi bob", to_user="bob")
    for p in (a2, b1, b2):
        await p.wait_for(_saw(p, "hi bob"))
    await eve.send_and_ack("eve here", room="general")
    assert eve.texts() == ["eve here"]
    assert [m.sender for m in b2.messages()] == ["alice"]


async def test_a_room_message_reaches_every_session_of_a_member_including_the_senders_other_one(
    peers: Peers,
) -> None:
    a1 = await peers.open("alice")
    a2 = await peers.open("alice")
    bob = await peers.open("bob")
    for p in (a1, a2, bob):
        await p.join("general")
    sent = await a1.send_and_ack("hello", room="general")
    assert sent.seq == 1 and sent.sender == "alice"
    for p in (a2, bob):
        await p.wait_for(_saw(p, "hello"))
        assert p.texts() == ["hello"]


async def test_presence_is_announced_and_members_listed(server: ChatServer, peers: Peers) -> None:
    alice = await peers.open("alice")
    joined = await alice.join("general")
    assert list(joined.members) == ["alice"]
    bob = await peers.open("bob")
    joined = await bob.join("general")
    assert list(joined.members) == ["alice", "bob"]
    await alice.wait_for(
        lambda ev: any(
            p.user == "bob" and p.kind == pb.Presence.JOINED for p in alice.of("presence")
        )
    )
    # A second session of bob is not a new arrival.
    bob2 = await peers.open("bob")
    await bob2.join("general")
    from chatrpc.client import channel

    ch = channel(target(server))
    try:
        stub = pb_grpc.ChatServiceStub(ch)
        md = auth_metadata(alice.token)
        listed = await stub.ListMembers(pb.ListMembersRequest(room="general"), metadata=md)
        assert list(listed.members) == ["alice", "bob"]
        rooms = await stub.ListRooms(pb.ListRoomsRequest(), metadata=md)
        assert [(r.name, r.online) for r in rooms.rooms] == [("general", 2)]
        # bob leaves from one session: still online through the other.
        await bob.stream.leave("general")
        await bob.wait_for(lambda ev: bool(bob.of("left")))
        listed = await stub.ListMembers(pb.ListMembersRequest(room="general"), metadata=md)
        assert list(listed.members) == ["alice", "bob"]
        await bob2.quit()
        await alice.wait_for(
            lambda ev: any(
                p.user == "bob" and p.kind == pb.Presence.LEFT for p in alice.of("presence")
            )
        )
        listed = await stub.ListMembers(pb.ListMembersRequest(room="general"), metadata=md)
        assert list(listed.members) == ["alice"]
        joins = [p for p in alice.of("presence") if p.kind == pb.Presence.JOINED]
        assert [p.user for p in joins] == ["bob"]
    finally:
        await ch.close()


async def test_a_slow_reader_does_not_delay_the_others_and_is_cut_off() -> None:
    """A session that never reads overflows its queue; the room keeps flowing."""
    async with running_server(queue_size=64) as srv:
        group = Peers(target(srv))
        try:
            sender = await group.open("sender")
            fast = await group.open("fast")
            await sender.join("busy")
            await fast.join("busy")
            # The slow reader joins with a raw call and never reads again.
            from chatrpc.client import ChatStream, channel

            # A small receive window, so the server's writes to it block at once.
            small_window = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)]
            slow_ch = channel(target(srv), options=small_window)
            slow_token = await group.token("slow")
            slow = ChatStream(slow_ch, slow_token)
            await slow.join("busy")
            await slow.call.initial_metadata()
            n = 3000
            text = "x" * 1000
            for i in range(n):
                await sender.stream.send(f"{i} {text}", room="busy", client_msg_id=f"m{i}")
            await fast.wait_for(lambda ev: len(fast.messages()) >= n, timeout=60)
            assert [int(m.text.split()[0]) for m in fast.messages()] == list(range(n))
            # The slow one is cut off with a resume hint once it reads again.
            codes = []

            async def drain() -> None:
                try:
                    async for _ in slow:
                        pass
                except grpc.aio.AioRpcError as exc:
                    codes.append((exc.code(), exc.details()))

            await asyncio.wait_for(drain(), 30)
            assert codes and codes[0][0] == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "slow consumer: resume from seq" in codes[0][1]
            assert "#busy" in codes[0][1]
            await slow_ch.close()
        finally:
            await group.close()


async def test_a_slow_consumer_that_stops_reading_leaves_the_room_and_learns_why_later() -> None:
    """Its writer is stuck on flow control; the stall timeout clears its presence, and
    when it reads again (a suspended client resumed) it gets its end status, not a hang."""
    async with running_server(queue_size=32, stall_timeout_s=0.5) as srv:
        group = Peers(target(srv))
        try:
            sender = await group.open("sender")
            await sender.join("busy")
            from chatrpc.client import ChatStream, channel

            small_window = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)]
            slow_ch = channel(target(srv), options=small_window)
            slow = ChatStream(slow_ch, await group.token("slow"), batch=1)
            await slow.join("busy")
            await slow.call.initial_metadata()
            await sender.wait_for(lambda ev: any(p.user == "slow" for p in sender.of("presence")))
            for i in range(600):
                await sender.stream.send(f"{i} " + "y" * 1000, room="busy", client_msg_id=f"m{i}")
            # Never read by slow: it is cut off and announced as gone.
            await sender.wait_for(
                lambda ev: any(
                    p.user == "slow" and p.kind == pb.Presence.LEFT for p in sender.of("presence")
                ),
                timeout=30,
            )
            code, details = await asyncio.wait_for(end_status(slow), 30)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
            assert "slow consumer: resume from seq" in details and "in #busy" in details
            await slow_ch.close()
        finally:
            await group.close()


async def test_a_room_past_the_cap_by_sessions_names_nobody_as_it_announces_nobody() -> None:
    """One user with more sessions than the cap: the room announces no joins, so a
    join names nobody either (a list it would never update)."""
    async with running_server(limits=Limits(rate_limit=0, presence_max_sessions=2)) as srv:
        group = Peers(target(srv))
        try:
            for _ in range(3):
                await (await group.open("alice")).join("big")
            bob = await group.open("bob")
            joined = await bob.join("big")
            assert (list(joined.members), joined.online) == ([], 2)
        finally:
            await group.close()


async def test_a_room_past_the_presence_cap_stops_announcing_joins_and_naming_members() -> None:
    """Past the cap a join tells how many are online but names none (the names would
    make a big room's join storm quadratic); ListMembers still names them all."""
    async with running_server(limits=Limits(rate_limit=0, presence_max_sessions=2)) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            joined = await alice.join("big")
            assert (list(joined.members), joined.online) == (["alice"], 1)
            bob = await group.open("bob")
            joined = await bob.join("big")
            assert (list(joined.members), joined.online) == (["alice", "bob"], 2)
            await alice.wait_for(lambda ev: [p.user for p in alice.of("presence")] == ["bob"])
            carol = await group.open("carol")
            joined = await carol.join("big")  # the third session: over the cap
            assert (list(joined.members), joined.online) == ([], 3)
            # A message after carol's join arrives after any announcement would have.
            await carol.send_and_ack("hi", room="big")
            await alice.wait_for(lambda ev: "hi" in alice.texts())
            assert [p.user for p in alice.of("presence")] == ["bob"]
            async with grpc.aio.insecure_channel(target(srv)) as ch:
                listed = await pb_grpc.ChatServiceStub(ch).ListMembers(
                    pb.ListMembersRequest(room="big"), metadata=auth_metadata(carol.token)
                )
            assert list(listed.members) == ["alice", "bob", "carol"]
        finally:
            await group.close()
