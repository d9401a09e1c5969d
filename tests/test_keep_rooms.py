"""Owners keep a room from pruning (ModerateRequest.set_kept), end to end on a real
server: who may keep a room, the KEEP item live and in History, ``Room.kept`` in
ListRooms, and the background sweep (``--empty-room-ttl``) leaving a kept room
while it prunes an identical one, on every store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from chatrpc.client import channel
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb

from .conftest import WAIT, Peers, running_server, target
from .redis_fixture import RedisServer
from .test_private_rooms import Calls, world

__all__ = ["world"]

S = grpc.StatusCode
TTL_S = 0.3


# -- who may keep a room, and what members see ------------------------------------------


async def test_only_owners_keep_a_room_and_a_missing_room_is_not_found(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    for name in ("alice", "bob", "carol"):
        peer = await peers.open(name)
        await peer.join("hall")
    await calls.moderate(
        "alice", "hall", set_role=pb.SetRole(user="carol", role=pb.Member.MODERATOR)
    )
    for user in ("bob", "carol"):  # a member, a moderator
        code, details = await calls.status(
            user, "ModerateRoom", pb.ModerateRequest(room="hall", set_kept=True)
        )
        assert code == S.PERMISSION_DENIED and "only owners" in details, (user, details)
    code, details = await calls.status(
        "alice", "ModerateRoom", pb.ModerateRequest(room="nowhere", set_kept=True)
    )
    assert (code, details) == (S.NOT_FOUND, "no room named #nowhere")
    listed = await calls.call("bob", "ListRooms", pb.ListRoomsRequest(prefix="hall"))
    assert [(r.name, r.kept) for r in listed.rooms] == [("hall", False)]
    page = await calls.call("alice", "History", pb.HistoryRequest(room="hall"))
    assert [m.kind for m in page.messages] == [pb.Message.ROLE]  # no KEEP was recorded


async def test_the_keep_item_reaches_members_live_is_in_history_and_listed(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    bob = await peers.open("bob")
    await bob.join("hall")
    event = await calls.moderate("alice", "hall", set_kept=True, reason="our meeting place")
    assert (event.kind, event.kept, event.sender, event.text) == (
        pb.Message.KEEP,
        True,
        "alice",
        "our meeting place",
    )
    await bob.wait_for(lambda ev: any(m.kind == pb.Message.KEEP for m in bob.messages()))
    (live,) = [m for m in bob.messages() if m.kind == pb.Message.KEEP]
    assert (live.seq, live.kept, live.room) == (event.seq, True, "hall")
    again = await calls.moderate("alice", "hall", set_kept=True)  # kept already: stored anyway
    assert again.kept and again.seq == event.seq + 1
    listed = await calls.call("bob", "ListRooms", pb.ListRoomsRequest())
    assert [(r.name, r.kept) for r in listed.rooms] == [("hall", True)]
    off = await calls.moderate("alice", "hall", set_kept=False)
    assert off.kind == pb.Message.KEEP and not off.kept
    page = await calls.call("bob", "History", pb.HistoryRequest(room="hall"))
    assert [(m.kind, m.kept) for m in page.messages] == [
        (pb.Message.KEEP, True),
        (pb.Message.KEEP, True),
        (pb.Message.KEEP, False),
    ]
    listed = await calls.call("bob", "ListRooms", pb.ListRoomsRequest())
    assert [(r.name, r.kept) for r in listed.rooms] == [("hall", False)]


# -- the sweep --------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def pruning_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ChatServer]:
    """A server pruning rooms empty for :data:`TTL_S`, on each store."""
    url = "memory://"
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path}/chat.db"
    elif request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        redis.flush()
        url = redis.url_for(0)
    async with running_server(url, empty_room_ttl_s=TTL_S) as srv:
        yield srv


async def emptied(srv: ChatServer, room: str) -> None:
    """Drops every stored item of ``room``, as retention or ``prune-history`` would."""
    await srv.store.prune_history("#" + room, before_ms=int(time.time() * 1000) + 1000)


async def test_a_kept_private_room_survives_sweeps_past_its_ttl_until_let_go(
    pruning_server: ChatServer,
) -> None:
    srv = pruning_server
    peers = Peers(target(srv))
    ch = channel(target(srv))
    try:
        calls = Calls(peers, ch)
        alice = await peers.open("alice")
        for room in ("loose", "kept"):  # identical private, moderated rooms
            await alice.join(room)
            await calls.moderate("alice", room, set_private=True)
            await calls.moderate("alice", room, set_topic="plans")
        await calls.moderate("alice", "kept", set_kept=True)
        for room in ("loose", "kept"):
            await alice.stream.leave(room)
        await alice.wait_for(lambda ev: len(alice.of("left")) == 2)
        for room in ("loose", "kept"):
            await emptied(srv, room)

        async def kept_of() -> dict[str, bool]:
            page = await calls.call("alice", "ListRooms", pb.ListRoomsRequest())
            return {r.name: r.kept for r in page.rooms}

        async def sweeps_past_ttl() -> None:
            """Sweeps until one that began a whole TTL after both rooms went idle."""
            idle_since = time.monotonic()
            while "loose" in await kept_of() or time.monotonic() - idle_since < 2 * TTL_S:
                await srv.next_sweep()

        await asyncio.wait_for(sweeps_past_ttl(), WAIT)
        assert await kept_of() == {"kept": True}
        settings = await srv.store.room_settings("kept")
        assert settings.private and settings.kept and settings.topic == "plans"

        # Let go of (and emptied again: the KEEP item is stored), it is pruned.
        await calls.moderate("alice", "kept", set_kept=False)
        await emptied(srv, "kept")

        async def until_pruned() -> None:
            while "kept" in await kept_of():
                await srv.next_sweep()

        await asyncio.wait_for(until_pruned(), WAIT)
        # Gone with its marks: made again under its name, it starts public and unkept.
        assert (await srv.store.room_settings("kept")) == type(settings)()
    finally:
        await peers.close()
        await ch.close()


# -- the operator ---------------------------------------------------------------------------


async def test_the_operator_keeps_any_room_with_chatrpc_admin(tmp_path: Path) -> None:
    from .test_admin import admin, one_error

    sock = tmp_path / "admin.sock"
    async with running_server("memory://", admin_socket=str(sock)) as srv:
        peers = Peers(target(srv))
        ch = channel(target(srv))
        try:
            calls = Calls(peers, ch)
            bob = await peers.open("bob")
            await bob.join("lobby")
            base = ("--socket", str(sock))
            kept = await admin(*base, "moderate", "lobby", "keep", "on", "--reason", "ours")
            assert kept.code == 0 and "#lobby keep on: done (#1)" in kept.out, kept
            await bob.wait_for(lambda ev: any(m.kind == pb.Message.KEEP for m in bob.messages()))
            (event,) = bob.messages()
            assert (event.sender, event.kept, event.text) == ("", True, "ours")
            assert (await srv.store.room_settings("lobby")).kept
            assert (await admin(*base, "moderate", "lobby", "keep", "off")).code == 0
            assert not (await srv.store.room_settings("lobby")).kept
            listed = await calls.call("bob", "ListRooms", pb.ListRoomsRequest())
            assert [(r.name, r.kept) for r in listed.rooms] == [("lobby", False)]
            one_error(await admin(*base, "moderate", "lobby", "keep", "maybe"), 2, "on or off")
            one_error(await admin(*base, "moderate", "nowhere", "keep", "on"), 1, "no room")
        finally:
            await peers.close()
            await ch.close()
