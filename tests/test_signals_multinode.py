"""Typing notices and read markers across two chatrpc-server processes on one Redis."""

from __future__ import annotations

from chatrpc.v1 import chat_pb2 as pb

from . import test_multinode as multinode
from .test_multinode import Cluster
from .test_signals import mark_read, markers, typing, typing_events

pytestmark = multinode.pytestmark

#: The two-server cluster of tests/test_multinode.py.
cluster = multinode.cluster
redis = multinode.redis
durable = multinode.durable


async def test_typing_reaches_the_members_and_the_peer_on_the_other_server(
    cluster: Cluster,
) -> None:
    alice = await cluster.on_a.open("alice")
    bob, alice_b = await cluster.on_b.open("bob"), await cluster.on_b.open("alice")
    for p in (alice, bob, alice_b):
        await p.join("general")
    await typing(alice, room="general")
    await bob.wait_for(lambda ev: bool(typing_events(bob)))
    assert typing_events(bob) == [pb.UserTyping(room="general", user="alice")]
    await typing(alice, to_user="bob")
    await bob.wait_for(lambda ev: len(typing_events(bob)) == 2)
    assert typing_events(bob)[1] == pb.UserTyping(with_user="alice", user="alice")
    # Alice's own session elsewhere heard none of it: a message after it shows so.
    await alice.send_and_ack("after", room="general")
    await alice_b.wait_for(lambda ev: "after" in alice_b.texts())
    assert typing_events(alice_b) == []


async def test_a_read_marker_reaches_the_users_and_the_peers_sessions_on_the_other_server(
    cluster: Cluster,
) -> None:
    alice, bob = await cluster.on_a.open("alice"), await cluster.on_b.open("bob")
    alice_b = await cluster.on_b.open("alice")
    await alice.join("general")
    await bob.join("general")
    await bob.send_and_ack("r1", room="general")
    await bob.send_and_ack("d1", to_user="alice")
    await bob.send_and_ack("d2", to_user="alice")
    await mark_read(alice, 1, room="general")
    await mark_read(alice, 2, to_user="bob")
    await alice_b.wait_for(lambda ev: len(markers(alice_b)) == 2)
    assert markers(alice_b) == [
        pb.ReadMarker(room="general", user="alice", seq=1),
        pb.ReadMarker(with_user="bob", user="alice", seq=2),
    ]
    await bob.wait_for(lambda ev: bool(markers(bob)))
    assert markers(bob) == [pb.ReadMarker(with_user="alice", user="alice", seq=2)]
    joined = await bob.join("general")
    assert joined.read_seq == 0
    resume = pb.Join(with_user="alice", after_seq=2)
    await bob.stream.write(pb.ClientEvent(join=resume))
    await bob.wait_for(lambda ev: any(j.with_user == "alice" for j in bob.of("joined")))
    dm_joined = next(j for j in bob.of("joined") if j.with_user == "alice")
    assert dm_joined.peer_read_seq == 2
