"""--idle-account-ttl: names never claimed with a password, unused for longer than
the TTL, are freed, unless they are in a direct conversation or own a room; a
live session keeps its account seen. On every store, against a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from chatrpc.client import channel, login
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import WAIT, Peers, running_server, target
from .redis_fixture import RedisServer

TTL = 0.4


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def idle_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChatServer]:
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        redis.flush()
        url = redis.url
    else:
        url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path / 'chat.db'}"
    async with running_server(url, idle_account_ttl_s=TTL) as srv:
        yield srv


async def sweeps_until(srv: ChatServer, done: float) -> None:
    """Waits on the background sweeps (each within WAIT) until ``done`` (monotonic)."""
    while time.monotonic() < done:
        await asyncio.wait_for(srv.housekeeping.next_account_sweep(), WAIT)


async def test_idle_names_without_password_dm_or_room_are_freed(idle_server: ChatServer) -> None:
    srv = idle_server
    peers = Peers(target(srv))
    ch = channel(target(srv))
    try:
        ghost = await peers.token("ghost")
        await login(ch, "keeper", "secret")
        talker = await peers.open("talker")
        await peers.token("friend")
        await talker.send_and_ack("hi", to_user="friend")
        owner = await peers.open("owner")
        await owner.join("mine")
        active = await peers.open("active")
        await talker.close()
        await owner.close()
        idle_since = time.monotonic()

        async def ghost_gone() -> None:
            while await srv.store.get_account("ghost") is not None:
                await srv.housekeeping.next_account_sweep()

        await asyncio.wait_for(ghost_gone(), WAIT)
        # Three TTLs of idleness later, every other account is still there.
        await sweeps_until(srv, idle_since + 3 * TTL)
        for kept in ("keeper", "talker", "friend", "owner", "active"):
            assert await srv.store.get_account(kept) is not None, kept
        assert srv.housekeeping.accounts_expired == 1
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await pb_grpc.ChatServiceStub(ch).ListRooms(
                pb.ListRoomsRequest(), metadata=[("authorization", f"Bearer {ghost}")]
            )
        assert stale.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await login(ch, "ghost")).created  # the name is free again
        await active.join("lobby")  # its session was never touched
    finally:
        await ch.close()
        await peers.close()
