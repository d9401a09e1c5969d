"""A rejoin (a reconnect's resume of a room the user is a member of) through a real
server: it writes nothing to the store, yet misses nothing."""

from __future__ import annotations

from chatrpc.server import ChatServer
from chatrpc.store import RoomEntry

from .conftest import Peers


async def _entry(server: ChatServer, room: str) -> RoomEntry:
    (entry,) = [r for r in await server.hub.store.rooms_page(limit=100) if r.name == room]
    return entry


async def test_a_rejoin_by_a_member_leaves_the_room_as_it_was_and_replays_what_it_missed(
    server: ChatServer, peers: Peers
) -> None:
    alice = await peers.open("alice")
    bob = await peers.open("bob")
    joined = await alice.join("red")
    await bob.join("red")
    await alice.close()
    sent = await bob.send_and_ack("while away", room="red")
    before = await _entry(server, "red")

    back = await peers.open("alice")
    again = await back.join("red", after_seq=joined.last_seq, epoch=joined.epoch)
    assert again.complete and again.replayed == 1
    await back.wait_for(lambda ev: "while away" in back.texts())
    assert [m.seq for m in back.messages()] == [sent.seq]
    assert await _entry(server, "red") == before  # no activity mark, no write
    assert await server.hub.store.is_member("red", "alice")

    # A first join is a room's activity and a membership, as before.
    carol = await peers.open("carol")
    await carol.join("red")
    assert (await _entry(server, "red")).active_ms > before.active_ms
    assert await server.hub.store.is_member("red", "carol")


async def test_a_user_who_left_is_a_member_again_when_they_join(
    server: ChatServer, peers: Peers
) -> None:
    alice = await peers.open("alice")
    await alice.join("red")
    await alice.stream.leave("red")
    await alice.wait_for(lambda ev: len(alice.of("left")) == 1)
    assert not await server.hub.store.is_member("red", "alice")
    await alice.join("red")
    assert await server.hub.store.is_member("red", "alice")
