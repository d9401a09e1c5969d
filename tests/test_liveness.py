"""A client that vanishes without closing is noticed and its presence cleared."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from chatrpc.v1 import chat_pb2 as pb

from .conftest import BIN, Peers, start_server_process


def _presence(peer, user: str, kind: int) -> bool:
    return any(p.user == user and p.kind == kind for p in peer.of("presence"))


@pytest.mark.parametrize("how", ["killed", "frozen"])
async def test_a_vanished_client_leaves_the_room(
    how: str, tmp_path: Path, client_env: dict[str, str]
) -> None:
    """killed: the kernel resets the connection. frozen (SIGSTOP): only keepalive can tell."""
    sp = start_server_process(
        "--store",
        "memory://",
        "--keepalive",
        "1",
        "--keepalive-timeout",
        "1",
        # Gone without a word: online for the grace, then announced gone.
        "--presence-grace",
        "1",
        "--log-level",
        "warning",
        log_dir=tmp_path,
    )
    group = Peers(sp.address)
    ghost = await asyncio.create_subprocess_exec(
        *[
            str(BIN / "chatrpc-client"),
            "--user",
            "ghost",
            "--server",
            sp.address,
            "--room",
            "general",
            "--listen",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=client_env,
    )
    try:
        watcher = await group.open("watcher")
        await watcher.join("general")
        await watcher.wait_for(lambda ev: _presence(watcher, "ghost", pb.Presence.JOINED), 30)
        ghost.send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        await watcher.wait_for(lambda ev: _presence(watcher, "ghost", pb.Presence.LEFT), 30)
        from chatrpc.client import auth_metadata, channel
        from chatrpc.v1 import chat_pb2_grpc as pb_grpc

        ch = channel(sp.address)
        try:
            stub = pb_grpc.ChatServiceStub(ch)
            members = await stub.ListMembers(
                pb.ListMembersRequest(room="general"), metadata=auth_metadata(watcher.token)
            )
            assert list(members.members) == ["watcher"]
        finally:
            await ch.close()
    finally:
        if ghost.returncode is None:
            ghost.kill()
        await ghost.wait()
        await group.close()
        assert sp.stop() == 0
