"""Abuse and quotas: the room creation quota, paged listings, pruning of empty
rooms and registration modes, against real servers (SQLite, memory, and two
servers sharing a real redis-server)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from chatrpc.client import auth_metadata, channel, login
from chatrpc.hub import Limits
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import BIN, WAIT, Peer, Peers, running_server, start_server_process, target
from .redis_fixture import RedisServer


async def join_or_error(peer: Peer, room: str) -> pb.Joined | pb.Error:
    """Joins ``room`` and returns its acknowledgement, or the error that refused it."""
    joins, errors = len(peer.of("joined")), len(peer.of("error"))
    await peer.stream.join(room)
    await peer.wait_for(lambda ev: len(peer.of("joined")) > joins or len(peer.of("error")) > errors)
    if len(peer.of("error")) > errors:
        error: pb.Error = peer.of("error")[-1]
        return error
    joined: pb.Joined = peer.of("joined")[-1]
    return joined


def stub(srv: ChatServer) -> tuple[grpc.aio.Channel, pb_grpc.ChatServiceStub]:
    ch = channel(target(srv))
    return ch, pb_grpc.ChatServiceStub(ch)


@pytest.fixture
async def quota_server(store_url: str) -> AsyncIterator[ChatServer]:
    async with running_server(
        store_url, limits=Limits(rate_limit=0, rooms_per_user_per_day=3)
    ) as srv:
        yield srv


# -- the room creation quota -----------------------------------------------------------------


async def test_an_account_hits_the_room_quota_and_is_refused_with_a_hint(
    quota_server: ChatServer,
) -> None:
    group = Peers(target(quota_server))
    try:
        alice = await group.open("alice")
        bob = await group.open("bob")
        for room in ("one", "two", "three"):
            assert isinstance(await join_or_error(alice, room), pb.Joined)
        refused = await join_or_error(alice, "four")
        assert isinstance(refused, pb.Error)
        assert refused.code == pb.Error.RESOURCE_EXHAUSTED
        assert "3 rooms in the last 24 hours" in refused.message
        assert "join an existing room" in refused.message and " in 24 h 0 min" in refused.message
        # Joining rooms that exist costs nothing: hers again, or anyone's.
        await alice.stream.leave("one")
        assert isinstance(await join_or_error(alice, "one"), pb.Joined)
        assert isinstance(await join_or_error(bob, "b1"), pb.Joined)
        assert isinstance(await join_or_error(alice, "b1"), pb.Joined)
        # The refusal created nothing.
        ch, api = stub(quota_server)
        try:
            page = await api.ListRooms(
                pb.ListRoomsRequest(prefix="four"), metadata=auth_metadata(alice.token)
            )
        finally:
            await ch.close()
        assert list(page.rooms) == []
    finally:
        await group.close()


async def test_the_room_quota_holds_across_two_servers_sharing_redis(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    limits = Limits(rate_limit=0, rooms_per_user_per_day=3)
    async with (
        running_server(redis_server.url, limits=limits) as a,
        running_server(redis_server.url, limits=limits) as b,
    ):
        on_a, on_b = Peers(target(a)), Peers(target(b))
        try:
            token = await on_a.token("alice")
            alice_a = await on_a.open("alice", token)
            alice_b = await on_b.open("alice", token)
            assert isinstance(await join_or_error(alice_a, "r1"), pb.Joined)
            assert isinstance(await join_or_error(alice_b, "r2"), pb.Joined)
            assert isinstance(await join_or_error(alice_a, "r3"), pb.Joined)
            for peer in (alice_b, alice_a):
                refused = await join_or_error(peer, "r4")
                assert isinstance(refused, pb.Error)
                assert refused.code == pb.Error.RESOURCE_EXHAUSTED
                assert "in 24 h 0 min" in refused.message
            # A room created through A is an existing room on B: free to join.
            bob_b = await on_b.open("bob")
            assert isinstance(await join_or_error(bob_b, "r1"), pb.Joined)
            # ListRooms on A counts who is online through B too.
            await alice_a.wait_for(lambda ev: any(p.user == "bob" for p in alice_a.of("presence")))
            ch, api = stub(a)
            try:
                page = await api.ListRooms(pb.ListRoomsRequest(), metadata=auth_metadata(token))
            finally:
                await ch.close()
            assert (page.rooms[0].name, page.rooms[0].online) == ("r1", 2)
            assert {r.name: r.online for r in page.rooms} == {"r1": 2, "r2": 1, "r3": 1}
        finally:
            await on_a.close()
            await on_b.close()


# -- paged listings ------------------------------------------------------------------------------


async def test_list_rooms_pages_through_10000_rooms_with_every_page_within_its_size(
    store_url: str,
) -> None:
    async with running_server(store_url) as srv:
        names = [f"room{i:05d}" for i in range(10_000)]
        for start in range(0, len(names), 1000):
            await asyncio.gather(
                *(srv.store.claim_room(n, "loader") for n in names[start : start + 1000])
            )
        ch, api = stub(srv)
        try:
            token = (await login(ch, "reader")).token
            md = auth_metadata(token)
            seen: list[str] = []
            page_token = ""
            pages = 0
            while True:
                page = await api.ListRooms(
                    pb.ListRoomsRequest(page_size=1000, page_token=page_token), metadata=md
                )
                assert len(page.rooms) <= 500  # the server's maximum
                assert page.ByteSize() < 500 * 64
                seen.extend(r.name for r in page.rooms)
                pages += 1
                page_token = page.next_page_token
                if not page_token:
                    break
            assert pages == 20
            assert len(seen) == len(set(seen)) == 10_000
            assert seen[0] == "room09999"  # the newest first
            default = await api.ListRooms(pb.ListRoomsRequest(), metadata=md)
            assert len(default.rooms) == 100 and default.next_page_token
            found = await api.ListRooms(
                pb.ListRoomsRequest(prefix="room0999", page_size=7), metadata=md
            )
            assert [r.name for r in found.rooms] == [f"room0999{i}" for i in range(7)]
            more = await api.ListRooms(
                pb.ListRoomsRequest(prefix="room0999", page_token=found.next_page_token),
                metadata=md,
            )
            assert [r.name for r in more.rooms] == ["room09997", "room09998", "room09999"]
            assert not more.next_page_token
        finally:
            await ch.close()


async def test_a_page_puts_rooms_with_users_online_first(peers: Peers) -> None:
    alice = await peers.open("alice")
    bob = await peers.open("bob")
    await alice.join("zz-busy")
    await bob.join("zz-busy")
    # Active last and first by name, but nobody is in it now.
    await alice.join("aa-quiet")
    await alice.stream.leave("aa-quiet")
    await alice.wait_for(lambda ev: bool(alice.of("left")))
    ch = channel(peers.address)
    try:
        api = pb_grpc.ChatServiceStub(ch)
        page = await api.ListRooms(pb.ListRoomsRequest(), metadata=auth_metadata(alice.token))
    finally:
        await ch.close()
    assert [(r.name, r.online) for r in page.rooms] == [("zz-busy", 2), ("aa-quiet", 0)]


async def test_a_page_token_from_elsewhere_is_refused_clearly(peers: Peers) -> None:
    alice = await peers.open("alice")
    ch = channel(peers.address)
    try:
        api = pb_grpc.ChatServiceStub(ch)
        md = auth_metadata(alice.token)
        for request in (
            pb.ListRoomsRequest(page_token="garbage!"),
            pb.ListRoomsRequest(page_token="bnxyb29t"),  # a name search's token
            pb.ListRoomsRequest(prefix="a", page_token="YXwxfHJvb20"),  # an activity token
            pb.ListRoomsRequest(prefix="not a name"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await api.ListRooms(request, metadata=md)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.ListDirects(pb.ListDirectsRequest(page_token="x"), metadata=md)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in (err.value.details() or "")
    finally:
        await ch.close()


async def test_list_members_and_list_directs_come_a_page_at_a_time(peers: Peers) -> None:
    users = [f"u{i}" for i in range(7)]
    opened = [await peers.open(u) for u in users]
    for peer in opened:
        await peer.join("hall")
        await opened[0].send_and_ack(f"hi {peer.user}", to_user=peer.user)
    ch = channel(peers.address)
    try:
        api = pb_grpc.ChatServiceStub(ch)
        md = auth_metadata(opened[0].token)
        names: list[str] = []
        page_token = ""
        while True:
            page = await api.ListMembers(
                pb.ListMembersRequest(room="hall", page_size=3, page_token=page_token),
                metadata=md,
            )
            assert len(page.members) <= 3
            names.extend(page.members)
            page_token = page.next_page_token
            if not page_token:
                break
        assert names == users
        peers_seen: list[str] = []
        page_token = ""
        while True:
            dpage = await api.ListDirects(
                pb.ListDirectsRequest(page_size=2, page_token=page_token), metadata=md
            )
            assert len(dpage.directs) <= 2 and dpage.epoch
            peers_seen.extend(d.with_user for d in dpage.directs)
            page_token = dpage.next_page_token
            if not page_token:
                break
        assert peers_seen == users  # u0 with itself included
    finally:
        await ch.close()


# -- pruning ---------------------------------------------------------------------------------------


async def test_an_empty_room_is_pruned_after_its_ttl_while_a_room_with_messages_stays(
    store_url: str,
) -> None:
    async with running_server(store_url, empty_room_ttl_s=0.3) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            for room in ("ghost", "kept", "occupied"):
                await alice.join(room)
            await alice.send_and_ack("stays", room="kept")
            for room in ("ghost", "kept"):
                await alice.stream.leave(room)
            await alice.wait_for(lambda ev: len(alice.of("left")) == 2)
            ch, api = stub(srv)
            md = auth_metadata(alice.token)

            async def names() -> set[str]:
                page = await api.ListRooms(pb.ListRoomsRequest(), metadata=md)
                return {r.name for r in page.rooms}

            async def until_pruned() -> None:
                while "ghost" in await names():
                    await srv.next_sweep()

            try:
                assert await names() == {"ghost", "kept", "occupied"}
                await asyncio.wait_for(until_pruned(), WAIT)
                assert await names() == {"kept", "occupied"}
                # The name is free again; the kept room's history goes on.
                assert isinstance(await join_or_error(alice, "ghost"), pb.Joined)
                joined = await join_or_error(alice, "kept")
                assert isinstance(joined, pb.Joined) and joined.last_seq == 1
            finally:
                await ch.close()
        finally:
            await group.close()


# -- registration modes ---------------------------------------------------------------------------


async def login_code(
    srv: ChatServer, user: str, *, password: str = "", registration_token: str = ""
) -> grpc.StatusCode:
    ch = channel(target(srv))
    try:
        await login(ch, user, password, registration_token=registration_token)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    finally:
        await ch.close()
    return grpc.StatusCode.OK


def admin(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "chatrpc-admin"), "--db", str(db), "registration-token", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_open_registration_lets_anyone_claim_a_name(tmp_path: Path) -> None:
    async with running_server(f"sqlite://{tmp_path / 'chat.db'}", registration="open") as srv:
        assert await login_code(srv, "newcomer") == grpc.StatusCode.OK


async def test_closed_registration_refuses_new_names_and_lets_accounts_log_in(
    tmp_path: Path,
) -> None:
    url = f"sqlite://{tmp_path / 'chat.db'}"
    async with running_server(url) as srv:
        assert await login_code(srv, "alice", password="pw") == grpc.StatusCode.OK
    async with running_server(url, registration="closed") as srv:
        ch = channel(target(srv))
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await login(ch, "bob")
        finally:
            await ch.close()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "registration is closed" in (err.value.details() or "")
        assert await login_code(srv, "alice", password="pw") == grpc.StatusCode.OK
        assert await login_code(srv, "alice", password="wrong") == grpc.StatusCode.UNAUTHENTICATED


async def test_token_registration_needs_a_token_and_refuses_one_used_past_its_limit(
    tmp_path: Path,
) -> None:
    db = tmp_path / "chat.db"
    async with running_server(f"sqlite://{db}") as srv:
        assert await login_code(srv, "alice", password="pw") == grpc.StatusCode.OK
    async with running_server(f"sqlite://{db}", registration="token") as srv:
        # The admin tool works on the file while the server runs.
        made = admin(db, "create", "--uses", "2", "--expires", "1h")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("reg-") and "2 use(s)" in made.stderr
        assert await login_code(srv, "bob") == grpc.StatusCode.PERMISSION_DENIED
        assert await login_code(srv, "bob", registration_token=token) == grpc.StatusCode.OK
        assert await login_code(srv, "carol", registration_token=token) == grpc.StatusCode.OK
        used_up = await login_code(srv, "dave", registration_token=token)
        assert used_up == grpc.StatusCode.UNAUTHENTICATED
        assert await login_code(srv, "erin", registration_token="reg-made-up") == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        # Existing accounts need no token; a token is not spent on them.
        assert await login_code(srv, "alice", password="pw") == grpc.StatusCode.OK
        listed = admin(db, "list")
        assert listed.returncode == 0 and " 0 " in listed.stdout.splitlines()[1]
        # A revoked token claims nothing, even with uses left.
        other = admin(db, "create", "--uses", "5").stdout.strip()
        token_id = next(
            line.split()[0]
            for line in admin(db, "list").stdout.splitlines()[1:]
            if line.split()[1] == "5"
        )
        revoked = admin(db, "revoke", token_id)
        assert revoked.returncode == 0 and token_id in revoked.stdout
        assert await login_code(srv, "frank", registration_token=other) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        missing = admin(db, "revoke", token_id)
        assert missing.returncode == 1 and "no registration token" in missing.stderr


def test_the_admin_tool_refuses_bad_arguments_in_one_line(tmp_path: Path) -> None:
    bad = admin(tmp_path / "chat.db", "create", "--expires", "soon")
    assert bad.returncode == 2
    assert "not a duration: 'soon'" in bad.stderr and "Traceback" not in bad.stderr
    bad = admin(tmp_path / "chat.db", "create", "--uses", "0")
    assert bad.returncode == 2 and "at least 1" in bad.stderr


# -- the terminal client -------------------------------------------------------------------------


def test_the_terminal_clients_rooms_command_pages_and_searches(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    sp = start_server_process(
        "--db", str(tmp_path / "chat.db"), "--list-page-max", "2", log_dir=tmp_path
    )
    try:
        script = "/join dev\n/join design\n/join ops\n/rooms\n/rooms more\n/rooms more\n/rooms de\n"
        result = subprocess.run(
            [str(BIN / "chatrpc-client"), "--user", "alice", "--server", sp.address],
            input=script,
            capture_output=True,
            text=True,
            env=client_env,
            timeout=30,
        )
    finally:
        sp.stop(signal.SIGKILL)
    # One problem (the last /rooms more) makes a piped client exit 1.
    assert result.returncode == 1, result.stderr
    assert result.stderr == "chatrpc-client: no more rooms: /rooms lists the first page again\n"
    lines = [ln for ln in result.stdout.splitlines() if "online)" in ln or "more" in ln]
    assert lines == [
        "-- #ops (1 online)",
        "-- #design (1 online)",
        "-- more rooms: /rooms more",
        "-- #dev (1 online)",
        "-- #general (1 online)",
        "-- #design (1 online)",
        "-- #dev (1 online)",
    ]


def test_the_terminal_client_claims_a_name_with_a_registration_token(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    db = tmp_path / "chat.db"
    sp = start_server_process("--db", str(db), "--registration", "token", log_dir=tmp_path)
    try:
        client = [str(BIN / "chatrpc-client"), "--user", "bob", "--server", sp.address]

        def run(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*client, *extra],
                input="hi\n",
                capture_output=True,
                text=True,
                env=client_env,
                timeout=30,
            )

        refused = run()
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and "needs a registration token" in refused.stderr
        token = admin(db, "create").stdout.strip()
        claimed = run("--registration-token", token)
        assert claimed.returncode == 0, claimed.stderr
        assert "<bob> hi" in claimed.stdout
        assert run().returncode == 0  # the stored token logs bob in from now on
    finally:
        sp.stop(signal.SIGKILL)
