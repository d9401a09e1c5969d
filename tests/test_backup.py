"""Online backups, and restores under a new epoch so that resuming clients stay correct."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc

from chatrpc.client import ChatClient, ChatStream, auth_metadata, channel
from chatrpc.store.sqlite import MIGRATIONS
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import WAIT, Peers, start_server_process

ADMIN = str(Path(sys.executable).parent / "chatrpc-admin")


def admin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ADMIN, *args], capture_output=True, text=True, timeout=60)


async def _joined(address: str, token: str, after_seq: int, epoch: str) -> pb.Joined:
    ch = channel(address)
    try:
        stream = ChatStream(ch, token)
        await stream.join("general", after_seq, epoch)
        async for event in stream:
            if event.WhichOneof("event") == "joined":
                stream.cancel()
                return event.joined
        raise AssertionError("the stream ended before the join was acknowledged")
    finally:
        await ch.close()


async def _history(address: str, token: str) -> list[tuple[int, str]]:
    async with grpc.aio.insecure_channel(address) as ch:
        page = await pb_grpc.ChatServiceStub(ch).History(
            pb.HistoryRequest(room="general"), metadata=auth_metadata(token)
        )
    return [(m.seq, m.text) for m in page.messages]


async def test_a_restored_backup_gets_a_new_epoch_and_a_resuming_client_reads_it_again(
    tmp_path: Path,
) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "backup.db"
    server = start_server_process("--db", str(db), "--log-level", "warning", log_dir=tmp_path)
    peers = Peers(server.address)
    seen: list[tuple[int, str]] = []
    arrived = asyncio.Event()

    def on_event(event: pb.ServerEvent) -> None:
        if event.WhichOneof("event") == "message":
            seen.append((event.message.seq, event.message.text))
            arrived.set()

    async def until(count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(seen) < count:
                arrived.clear()
                await arrived.wait()

    try:
        bob = await peers.open("bob")
        await bob.join("general")
        alice_token = await peers.token("alice")
        alice = ChatClient(server.address, "alice", alice_token, on_event=on_event)
        await alice.start()
        await alice.join("general")
        for i in range(3):
            await bob.send_and_ack(f"kept {i}", room="general")
        made = admin("--db", str(db), "backup", str(copy))  # while the server runs
        assert made.returncode == 0 and "backed up" in made.stdout, made.stderr
        for i in range(3):
            await bob.send_and_ack(f"lost {i}", room="general")
        await until(6)
        old_epoch = alice.state.epoch
        await alice.aclose()
        # Restoring under a running server is refused, with one line.
        refused = admin("--db", str(db), "restore", str(copy))
        assert refused.returncode == 1 and "stop it before restoring" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        await peers.close()
        assert server.stop() == 0
    restored = admin("--db", str(db), "restore", str(copy))
    assert restored.returncode == 0 and "as epoch" in restored.stdout, restored.stderr
    server = start_server_process("--db", str(db), "--log-level", "warning", log_dir=tmp_path)
    tokens, peers = peers.tokens, Peers(server.address)
    peers.tokens = tokens  # accounts are in the restored copy
    try:
        # The raw contract: a resume from the old history is not complete.
        joined = await _joined(server.address, alice_token, 6, old_epoch)
        assert joined.epoch != old_epoch and not joined.complete and joined.last_seq == 3
        assert await _history(server.address, alice_token) == [
            (i + 1, f"kept {i}") for i in range(3)
        ]
        # The client that had seen seqs 4-6 of the lost history resumes: it shows
        # the restored conversation again from its start, then the new messages
        # that reuse seqs 4-6, none skipped as "seen already".
        alice = ChatClient(
            server.address, "alice", alice_token, on_event=on_event, state=alice.state
        )
        await alice.start()
        bob = await peers.open("bob")
        await bob.join("general")
        for i in range(3):
            await bob.send_and_ack(f"new {i}", room="general")
        await until(6 + 6)
        assert [text for _, text in seen[6:]] == [f"kept {i}" for i in range(3)] + [
            f"new {i}" for i in range(3)
        ]
        assert [seq for seq, _ in seen[6:]] == [1, 2, 3, 4, 5, 6]
        assert alice.state.epoch == joined.epoch
        await alice.aclose()
    finally:
        await peers.close()
        assert server.stop() == 0


def test_backup_and_restore_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    cases = [
        (["--db", str(tmp_path / "r1.db"), "restore", str(junk)], "is not a chatrpc database"),
        (["--db", str(tmp_path / "r2.db"), "restore", str(foreign)], "holds no epoch"),
        (["--db", str(tmp_path / "none.db"), "backup", str(tmp_path / "b.db")], "no database at"),
        (["--db", str(tmp_path / "x.db"), "restore", str(tmp_path / "none.db")], "no backup at"),
        (["--store", "memory://", "backup", str(tmp_path / "b.db")], "work on an SQLite store"),
    ]
    for args, error in cases:
        result = admin(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and error in lines[0], result.stderr
    # Nothing half-written is left behind (a lock file beside a database is normal).
    assert not [p.name for p in tmp_path.iterdir() if p.suffix in (".partial", ".restoring")]
    assert not (tmp_path / "r1.db").exists() and not (tmp_path / "b.db").exists()


def test_the_admin_tool_finds_the_servers_database_as_the_server_does(tmp_path: Path) -> None:
    """CHATRPC_DB (as contrib/chatrpc.service sets it), or the db of --config's file."""
    db = tmp_path / "chat.db"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', 'e1')")
    conn.commit()
    conn.close()
    env = {**os.environ, "CHATRPC_DB": str(db)}
    made = subprocess.run(
        [ADMIN, "backup", str(tmp_path / "b1.db")], capture_output=True, text=True, env=env
    )
    assert made.returncode == 0 and f"backed up {db}" in made.stdout, made.stderr
    config = tmp_path / "chatrpc.toml"
    config.write_text(f'db = "{db}"\n')
    made = admin("--config", str(config), "backup", str(tmp_path / "b2.db"))
    assert made.returncode == 0 and f"backed up {db}" in made.stdout, made.stderr
