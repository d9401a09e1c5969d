"""The admin service and ``chatrpc-admin`` against real servers: every command
and its errors, through the Unix socket, on SQLite and across two servers on
one Redis; the socket's mode; and that the TCP port never serves AdminService."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from chatrpc.client import channel, login
from chatrpc.v1 import admin_pb2 as apb
from chatrpc.v1 import admin_pb2_grpc as apb_grpc
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import BIN, WAIT, Peer, Peers, ServerProcess, running_server, start_server_process
from .redis_fixture import RedisServer

ADMIN = str(BIN / "chatrpc-admin")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return self.out.splitlines()

    def objects(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]


async def admin(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
    """Runs ``chatrpc-admin ARGS`` without blocking the loop (servers may be in it)."""
    proc = await asyncio.create_subprocess_exec(
        ADMIN,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def socket_mode(path: Path) -> int:
    return path.stat().st_mode


def one_error(result: Result, code: int, words: str) -> None:
    """The command failed with ``code`` and one line on stderr saying ``words``."""
    assert result.code == code, result
    assert result.err.count("\n") == 1 and words in result.err, result.err
    assert result.err.startswith("chatrpc-admin: ")


async def ended(peer: Peer) -> tuple[grpc.StatusCode | None, str]:
    await peer.wait_end()
    return peer.status, peer.details


@contextlib.asynccontextmanager
async def sqlite_server(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, Path]]:
    db = tmp_path / "chat.db"
    sp = start_server_process("--db", str(db), "--log-level", "warning", log_dir=tmp_path)
    try:
        yield sp, db
    finally:
        sp.stop(signal.SIGKILL)


async def test_the_socket_is_0600_and_the_tcp_port_never_serves_admin(tmp_path: Path) -> None:
    async with sqlite_server(tmp_path) as (sp, db):
        sock = Path(f"{db}.admin.sock")
        mode = socket_mode(sock)
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        ch = channel(sp.address)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await apb_grpc.AdminServiceStub(ch).ServerStats(apb.ServerStatsRequest())
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            await ch.close()
        stats = await admin("--db", str(db), "--json", "stats")
        assert stats.code == 0 and stats.objects()[0]["version"]


async def test_a_stale_socket_is_replaced_but_a_live_one_is_refused(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # the file stays, and nobody answers on it
    one_error(await admin("--socket", str(sock), "stats"), 1, "no chatrpc server answers on")
    sp = start_server_process(
        "--store", "memory://", "--admin-socket", str(sock), "--log-level", "warning"
    )
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert (await admin("--socket", str(sock), "stats")).code == 0
        with pytest.raises(AssertionError, match="another server answers on the admin socket"):
            start_server_process("--store", "memory://", "--admin-socket", str(sock))
        assert (await admin("--socket", str(sock), "stats")).code == 0  # still the first's
        # The tool finds the socket as the server does: its config file, its variables.
        config = tmp_path / "chatrpc.toml"
        config.write_text(f'store = "memory://"\nadmin-socket = "{sock}"\n')
        assert (await admin("--config", str(config), "stats")).code == 0
        env = {"CHATRPC_ADMIN_SOCKET": str(sock)}
        assert (await admin("--store", "memory://", "stats", env=env)).code == 0
    finally:
        assert sp.stop() == 0
    assert not sock.exists()  # removed at shutdown


async def test_without_a_server_or_a_socket_the_tool_says_so_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    one_error(
        await admin("--socket", str(missing), "users"),
        1,
        f"no chatrpc server answers on {missing}: is it running?",
    )
    one_error(await admin("--db", str(tmp_path / "x.db"), "stats"), 1, "is it running?")
    one_error(await admin("--store", "memory://", "stats"), 2, "no admin socket: give --socket")
    usage = await admin("--socket", str(missing), "prune-history", "--room", "general")
    one_error(usage, 2, "say what to prune")


async def test_every_command_on_a_running_server(tmp_path: Path) -> None:
    async with sqlite_server(tmp_path) as (sp, db):
        peers = Peers(sp.address)
        try:
            await _accounts_and_rooms(peers, db)
            await _history(db)
            await _sessions_end(peers, db)
        finally:
            await peers.close()


async def _accounts_and_rooms(peers: Peers, db: Path) -> None:
    alice, bob = await peers.open("alice"), await peers.open("bob")
    await alice.join("general")
    await bob.join("general")
    for text in ("one", "two", "three"):
        await alice.send_and_ack(text, room="general")
    await alice.send_and_ack("psst", to_user="bob")
    base = ("--db", str(db))

    table = await admin(*base, "users")
    assert table.code == 0 and table.lines()[0].split()[0] == "USER"
    assert [line.split()[0] for line in table.lines()[1:]] == ["alice", "bob"]
    found = (await admin(*base, "--json", "users", "al")).objects()
    assert [u["name"] for u in found] == ["alice"] and found[0]["sessionsHere"] == 1
    (one,) = (await admin(*base, "user", "BOB", "--json")).objects()  # either place
    assert one["name"] == "bob" and not one.get("hasPassword") and int(str(one["lastSeenMs"])) > 0
    one_error(await admin(*base, "user", "nobody"), 1, "no user named 'nobody'")
    one_error(await admin(*base, "user", "no body!"), 2, "user")

    (room,) = (await admin(*base, "--json", "rooms")).objects()
    assert room == {
        "name": "general",
        "owner": "alice",
        "members": 2,
        "stored": "3",
        "lastSeq": "3",
        "online": 2,
    }
    assert "#general" in (await admin(*base, "rooms", "gen")).out
    owner = await admin(*base, "set-owner", "general", "bob")
    assert owner.code == 0 and "now owned by bob (was alice)" in owner.out
    assert (await admin(*base, "--json", "rooms")).objects()[0]["owner"] == "bob"
    one_error(await admin(*base, "set-owner", "nowhere", "bob"), 1, "no room named #nowhere")
    one_error(await admin(*base, "set-owner", "general", "nobody"), 1, "no user named")


async def _history(db: Path) -> None:
    base = ("--db", str(db))
    export = await admin(*base, "export", "--room", "general")
    assert export.code == 0
    assert [(m["seq"], m["text"]) for m in export.objects()] == [
        ("1", "one"),
        ("2", "two"),
        ("3", "three"),
    ]
    dm = (await admin(*base, "export", "--direct", "bob", "alice")).objects()
    assert [(m["sender"], m["toUser"], m["text"]) for m in dm] == [("alice", "bob", "psst")]
    one_error(await admin(*base, "export", "--room", "nowhere"), 1, "nothing stored in #nowhere")
    pruned = await admin(*base, "prune-history", "--room", "general", "--keep-last", "1")
    assert pruned.code == 0 and "2 message(s) removed" in pruned.out
    kept = (await admin(*base, "export", "--room", "general")).objects()
    assert [m["seq"] for m in kept] == ["3"]
    aged = await admin(*base, "--json", "prune-history", "--room", "general", "--older-than", "1h")
    assert aged.code == 0 and aged.objects() == [{}]  # nothing that old: 0 removed
    bad = await admin(*base, "prune-history", "--direct", "a", "b!", "--keep-last", "1")
    one_error(bad, 2, "user")


async def _sessions_end(peers: Peers, db: Path) -> None:
    base = ("--db", str(db))
    bob = peers.opened[1]
    revoked = await admin(*base, "revoke-tokens", "bob")
    assert revoked.code == 0 and "token(s) of bob revoked" in revoked.out
    assert (await ended(bob))[0] == grpc.StatusCode.UNAUTHENTICATED

    alice = peers.opened[0]
    reset = await admin(*base, "reset-password", "alice", "--password-env", "PW", env={"PW": "s3"})
    assert reset.code == 0 and "password of alice set" in reset.out
    assert (await ended(alice))[0] == grpc.StatusCode.UNAUTHENTICATED
    ch = channel(peers.address)
    try:
        token = (await login(ch, "alice", "s3")).token
        alice = await peers.open("alice", token)
        await alice.join("general")
        disabled = await admin(*base, "disable", "alice")
        assert disabled.code == 0 and "1 session(s) ended here" in disabled.out
        assert await ended(alice) == (grpc.StatusCode.PERMISSION_DENIED, "account disabled")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await login(ch, "alice", "s3")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as by_token:
            await pb_grpc.ChatServiceStub(ch).ListRooms(
                pb.ListRoomsRequest(), metadata=[("authorization", f"Bearer {token}")]
            )
        assert by_token.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "account disabled" in (by_token.value.details() or "")
        assert (await admin(*base, "enable", "alice")).code == 0
        await login(ch, "alice", "s3")
        cleared = await admin(*base, "reset-password", "alice", "--clear")
        assert cleared.code == 0 and "removed" in cleared.out
        one_error(await admin(*base, "reset-password", "alice", "--password-stdin"), 2, "stdin")
        for command in ("disable", "enable", "revoke-tokens"):
            one_error(await admin(*base, command, "nobody"), 1, "no user named 'nobody'")
            one_error(await admin(*base, command, "bad name"), 2, "user")
        no_one = await admin(*base, "reset-password", "nobody", "--clear")
        one_error(no_one, 1, "no user named 'nobody'")
    finally:
        await ch.close()

    carol = await peers.open("carol")
    await carol.join("general")
    deleted = await admin(*base, "delete-room", "#general")
    assert deleted.code == 0 and "deleted #general: 1 message(s), 3 member(s)" in deleted.out
    await carol.wait_for(lambda ev: any(e.left.room == "general" for e in ev if e.HasField("left")))
    assert (await admin(*base, "--json", "rooms")).out == ""
    one_error(await admin(*base, "delete-room", "general"), 1, "no room named #general")
    (stats,) = (await admin(*base, "--json", "stats")).objects()
    assert stats["users"] == "3" and "rooms" not in stats and str(db) in str(stats["store"])
    assert stats["sessions"] == 1 and stats["sessionsByTransport"] == {"grpc": 1}
    assert "sessions  1 (grpc 1)" in (await admin(*base, "stats")).out


async def test_disable_on_one_server_ends_the_session_on_another_over_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis_server.flush()
    a_sock, b_sock = tmp_path / "a.sock", tmp_path / "b.sock"
    common = ("--store", redis_server.url, "--log-level", "warning")
    a = start_server_process(*common, "--admin-socket", str(a_sock), log_dir=tmp_path)
    b = start_server_process(*common, "--admin-socket", str(b_sock), log_dir=tmp_path)
    peers_b = Peers(b.address)
    try:
        alice = await peers_b.open("alice")
        carol = await peers_b.open("carol")
        await alice.join("lobby")
        await carol.join("lobby")
        (room,) = (await admin("--socket", str(a_sock), "--json", "rooms")).objects()
        assert room["name"] == "lobby" and room["online"] == 2 and room["members"] == 2
        disabled = await admin("--socket", str(a_sock), "disable", "alice")
        assert disabled.code == 0 and "0 session(s) ended here" in disabled.out
        assert await asyncio.wait_for(ended(alice), WAIT) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "account disabled",
        )
        users = (await admin("--socket", str(b_sock), "--json", "users")).objects()
        assert [(u["name"], u.get("disabled", False)) for u in users] == [
            ("alice", True),
            ("carol", False),
        ]
        assert (await admin("--socket", str(a_sock), "delete-room", "lobby")).code == 0
        await carol.wait_for(
            lambda ev: any(e.left.room == "lobby" for e in ev if e.HasField("left"))
        )
    finally:
        await peers_b.close()
        a.stop()
        b.stop()


async def test_listings_are_paged_with_tokens_and_the_tool_follows_every_page(
    tmp_path: Path,
) -> None:
    sock = tmp_path / "admin.sock"
    async with running_server("memory://", admin_socket=str(sock)) as srv:
        for i in range(150):
            assert await srv.store.create_account(f"user{i:03}", None, f"token-{i}")
            await srv.store.claim_room(f"room{i:03}", f"user{i:03}")
        ch = grpc.aio.insecure_channel(f"unix:{sock}")
        try:
            stub = apb_grpc.AdminServiceStub(ch)
            names, token = [], ""
            while True:
                page = await stub.ListUsers(
                    apb.ListUsersRequest(prefix="user1", page_size=40, page_token=token)
                )
                assert len(page.users) <= 40
                names += [u.name for u in page.users]
                token = page.next_page_token
                if not token:
                    break
            assert names == [f"user{i}" for i in range(100, 150)]
            rooms = await stub.ListRooms(apb.AdminListRoomsRequest(page_size=5000))
            assert len(rooms.rooms) == 150 and rooms.rooms[0].owner == "user000"
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.ListRooms(apb.AdminListRoomsRequest(page_token=token or "junk"))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as other:  # another listing's token
                first = await stub.ListUsers(apb.ListUsersRequest(page_size=1))
                await stub.ListRooms(apb.AdminListRoomsRequest(page_token=first.next_page_token))
            assert other.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await ch.close()
        every = await admin("--socket", str(sock), "--json", "users")
        assert [u["name"] for u in every.objects()] == [f"user{i:03}" for i in range(150)]
        table = await admin("--socket", str(sock), "rooms", "room14")
        assert [line.split()[0] for line in table.lines()[1:]] == [
            f"#room{i}" for i in range(140, 150)
        ]


async def test_grpcurl_lists_and_calls_the_admin_service_on_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"
    async with running_server("memory://", admin_socket=str(sock)) as srv:
        await srv.store.create_account("alice", None, "t")

        async def grpcurl(*flags: str, call: str = "list") -> str:
            proc = await asyncio.create_subprocess_exec(
                str(BIN / "grpcurl"),
                *("-plaintext", "-unix", *flags, str(sock), call),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            return out.decode()

        assert "chatrpc.v1.AdminService" in (await grpcurl()).split()
        call = "chatrpc.v1.AdminService/GetUser"
        got = json.loads(await grpcurl("-d", '{"user": "alice"}', call=call))
        assert got["name"] == "alice"
