"""The presence grace: a user whose connection dropped, or whose server stopped,
stays online for a while, so coming back announces nothing; a user who quits or
leaves is announced gone at once; one who does not come back, when it runs out."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatrpc.cli_server import build_parser, config_from_args
from chatrpc.client import auth_metadata, channel
from chatrpc.limits import Limits
from chatrpc.server import ChatServer
from chatrpc.settings import ConfigError
from chatrpc.store.sqlite import SQLiteStore
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, running_server, target
from .web_client import WebUser, web_url


def presence(peer: Peer, user: str) -> list[str]:
    return [pb.Presence.Kind.Name(p.kind) for p in peer.of("presence") if p.user == user]


async def members(server: ChatServer, token: str, room: str) -> list[str]:
    ch = channel(target(server))
    try:
        stub = pb_grpc.ChatServiceStub(ch)
        reply = await stub.ListMembers(
            pb.ListMembersRequest(room=room), metadata=auth_metadata(token)
        )
        return list(reply.members)
    finally:
        await ch.close()


async def arrives(peer: Peer, user: str) -> None:
    """Waits until ``peer`` saw ``user`` join. Presence reaches a session in the
    order it happened, so whatever was announced before is in hand then."""
    await peer.wait_for(lambda ev: "JOINED" in presence(peer, user))


async def alice_and_bob(peers: Peers) -> tuple[Peer, Peer]:
    """alice, then bob, in #general; alice saw bob arrive."""
    alice = await peers.open("alice")
    await alice.join("general")
    bob = await peers.open("bob")
    await bob.join("general")
    await arrives(alice, "bob")
    return alice, bob


def grace(seconds: float) -> Limits:
    return Limits(rate_limit=0, presence_grace_s=seconds)


async def test_a_dropped_user_back_within_the_grace_is_never_announced(server: ChatServer) -> None:
    peers = Peers(target(server))
    try:
        alice, bob = await alice_and_bob(peers)
        await bob.close()  # the connection drops: no goodbye
        assert await members(server, alice.token, "general") == ["alice", "bob"]
        back = await peers.open("bob")
        joined = await back.join("general")
        assert list(joined.members) == ["alice", "bob"]
        carol = await peers.open("carol")
        await carol.join("general")
        await arrives(alice, "carol")
        assert presence(alice, "bob") == ["JOINED"]
        # Back for good: quitting now is announced at once.
        await back.quit()
        await alice.wait_for(lambda ev: presence(alice, "bob") == ["JOINED", "LEFT"])
        assert await members(server, alice.token, "general") == ["alice", "carol"]
    finally:
        await peers.close()


async def test_a_dropped_user_who_stays_away_is_announced_when_the_grace_ends() -> None:
    async with running_server(limits=grace(0.5)) as server:
        peers = Peers(target(server))
        try:
            alice, bob = await alice_and_bob(peers)
            await bob.close()
            await alice.wait_for(lambda ev: presence(alice, "bob") == ["JOINED", "LEFT"], 10)
            assert await members(server, alice.token, "general") == ["alice"]
            # Back after the grace: a new arrival.
            again = await peers.open("bob")
            await again.join("general")
            await alice.wait_for(
                lambda ev: presence(alice, "bob") == ["JOINED", "LEFT", "JOINED"], 10
            )
        finally:
            await peers.close()


@pytest.mark.parametrize("how", ["quit", "leave"])
async def test_quitting_or_leaving_is_announced_at_once_whatever_the_grace(how: str) -> None:
    # An hour's grace: a LEFT seen here cannot be the grace running out.
    async with running_server(limits=grace(3600)) as server:
        peers = Peers(target(server))
        try:
            alice, bob = await alice_and_bob(peers)
            if how == "quit":
                await bob.quit()
            else:
                await bob.stream.leave("general")
            await alice.wait_for(lambda ev: presence(alice, "bob") == ["JOINED", "LEFT"], 10)
            assert await members(server, alice.token, "general") == ["alice"]
        finally:
            await peers.close()


async def test_without_a_grace_a_drop_is_announced_at_once() -> None:
    async with running_server(limits=grace(0)) as server:
        peers = Peers(target(server))
        try:
            alice, bob = await alice_and_bob(peers)
            await bob.close()
            await alice.wait_for(lambda ev: presence(alice, "bob") == ["JOINED", "LEFT"], 10)
        finally:
            await peers.close()


async def test_a_lingering_user_is_online_to_newcomers_and_goes_with_the_room(
    server: ChatServer,
) -> None:
    peers = Peers(target(server))
    try:
        bob = await peers.open("bob")
        await bob.join("general")
        await bob.close()
        alice = await peers.open("alice")
        joined = await alice.join("general")
        assert (list(joined.members), joined.online) == (["alice", "bob"], 2)
        rooms = await server.hub.presence.online_many(["general"])
        assert rooms == [{"alice", "bob"}]
    finally:
        await peers.close()


async def test_a_restart_keeps_who_was_online_for_the_grace(tmp_path: Path) -> None:
    """SIGTERM's path in process: the stopping server keeps who was online, the new
    one shows them online until they are back, and announces nothing of it."""
    store = f"sqlite://{tmp_path / 'chat.db'}"
    async with running_server(store) as first:
        before = Peers(target(first))
        first_alice = await before.open("alice")
        await first_alice.join("general")
        for user in ("bob", "carol"):
            peer = await before.open(user)
            await peer.join("general")
            await arrives(first_alice, user)
    # The sessions ended with the server (UNAVAILABLE: reconnect).
    async with running_server(store) as second:
        after = Peers(target(second))
        after.tokens = dict(before.tokens)
        try:
            await before.close()
            alice = await after.open("alice")
            joined = await alice.join("general")
            # Nobody else is back yet, and both are shown online.
            assert list(joined.members) == ["alice", "bob", "carol"]
            bob = await after.open("bob")
            await bob.join("general")
            dave = await after.open("dave")
            await dave.join("general")
            await arrives(alice, "dave")
            assert presence(alice, "bob") == []
        finally:
            await after.close()


async def test_who_lingers_after_a_restart_is_announced_gone_when_the_grace_ends(
    tmp_path: Path,
) -> None:
    store = f"sqlite://{tmp_path / 'chat.db'}"
    async with running_server(store) as first:
        before = Peers(target(first))
        for user in ("alice", "bob"):
            peer = await before.open(user)
            await peer.join("general")
    await before.close()
    async with running_server(store, limits=grace(0.5)) as second:
        after = Peers(target(second))
        after.tokens = dict(before.tokens)
        try:
            alice = await after.open("alice")
            await alice.join("general")
            await alice.wait_for(lambda ev: presence(alice, "bob") == ["LEFT"], 10)
            assert await members(second, alice.token, "general") == ["alice"]
        finally:
            await after.close()


async def test_the_store_keeps_who_was_online_once(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.take_online() == {}
        await store.keep_online({"general": ["alice", "bob"], "dev": ["carol"]})
        assert await store.take_online() == {"general": ["alice", "bob"], "dev": ["carol"]}
        assert await store.take_online() == {}
    finally:
        await store.close()
    # Something unreadable under the key is ignored, not a failed start.
    import sqlite3

    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('online_at_stop', '{not json')")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.take_online() == {}
    finally:
        await store.close()


def test_the_grace_is_a_server_option() -> None:
    parse = build_parser().parse_args
    assert config_from_args(parse([])).limits.presence_grace_s == 30.0
    assert config_from_args(parse(["--presence-grace", "0"])).limits.presence_grace_s == 0
    with pytest.raises(ConfigError, match="--presence-grace must be at least 0"):
        Limits(presence_grace_s=-1)


async def test_a_browser_tab_that_closes_its_socket_is_gone_at_once() -> None:
    async with running_server(limits=grace(3600)) as server:
        tab = WebUser(web_url(server))
        peers = Peers(target(server))
        try:
            bob = await peers.open("bob")
            await bob.join("general")
            await tab.login("alice")
            ws = await tab.open()
            await ws.join("general")
            await arrives(bob, "alice")
            await ws.ws.close()
            await bob.wait_for(lambda ev: presence(bob, "alice") == ["JOINED", "LEFT"], 10)
        finally:
            await peers.close()
            await tab.close()
