"""Typing notices, read markers and unread counts through the real grpcurl binary,
as the README shows them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

from .conftest import REPO, ServerProcess
from .test_contract_grpcurl import (
    GRPCURL,
    RUN_TIMEOUT,
    OpenChat,
    call,
    chat,
    login,
    of,
    ok,
    open_chat,
    parse_stream,
)

__all__ = ["open_chat"]  # the fixture, used by name


def test_typing_and_mark_read_from_grpcurl(
    server_process: ServerProcess, open_chat: Callable[[str], OpenChat]
) -> None:
    address = server_process.address
    alice, bob = login(address, "alice"), login(address, "bob")
    listener = open_chat(bob)
    listener.write({"join": {"room": "general"}})
    listener.wait_for(lambda objs: bool(of(objs, "joined")))
    other_bob = open_chat(bob)
    other_bob.write({"join": {"room": "general"}})
    other_bob.wait_for(lambda objs: bool(of(objs, "joined")))

    ok(
        chat(
            address,
            alice,
            {"join": {"room": "general"}},
            {"typing": {"room": "general"}},
            {"send": {"room": "general", "text": "hi @bob", "clientMsgId": "t-1"}},
            {"typing": {"toUser": "bob"}},
            {"send": {"toUser": "bob", "text": "psst", "clientMsgId": "t-2"}},
        )
    )
    objects = listener.wait_for(lambda objs: len(of(objs, "message")) >= 2)
    assert of(objects, "typing") == [
        {"room": "general", "user": "alice"},
        {"with_user": "alice", "user": "alice"},
    ]
    rooms = call(address, "ListRooms", json.dumps({"prefix": "gen"}), token=bob)["rooms"]
    assert rooms == [{"name": "general", "online": 1, "last_seq": "1", "unread": 1, "mentions": 1}]

    listener.write({"mark_read": {"room": "general", "seq": 1}})
    listener.write({"markRead": {"toUser": "alice", "seq": "1"}})
    synced = other_bob.wait_for(lambda objs: len(of(objs, "read_marker")) >= 2)
    assert of(synced, "read_marker") == [
        {"room": "general", "user": "bob", "seq": "1"},
        {"with_user": "alice", "user": "bob", "seq": "1"},
    ]
    directs = call(address, "ListDirects", token=alice)["directs"]
    assert directs == [{"with_user": "bob", "last_seq": "1", "peer_read_seq": "1"}]
    rooms = call(address, "ListRooms", json.dumps({"prefix": "gen"}), token=bob)["rooms"]
    assert rooms == [{"name": "general", "online": 1, "last_seq": "1", "read_seq": "1"}]

    # A seq past the newest is an error event; the session goes on.
    bad = chat(address, bob, {"markRead": {"room": "general", "seq": "5"}})
    errors = of(parse_stream(ok(bad)), "error")
    assert [e["code"] for e in errors] == ["INVALID_ARGUMENT"]
    assert "past the newest message of #general (1)" in errors[0]["message"]


def _readme_block() -> str:
    """The shell block of README's "Typing, read markers and unread counts"."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Typing, read markers and unread counts", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_typing_and_read_marker_block_runs(server_process: ServerProcess) -> None:
    address = server_process.address
    carol, bob = login(address, "carol"), login(address, "bob")
    ok(
        chat(
            address,
            bob,
            {"join": {"room": "general"}},
            {"send": {"room": "general", "text": "@carol hi", "clientMsgId": "r-1"}},
            *(
                {"send": {"toUser": "carol", "text": f"d{i}", "clientMsgId": f"r-d{i}"}}
                for i in range(3)
            ),
        )
    )
    script = _readme_block().replace(".venv/bin/grpcurl", GRPCURL)
    script = script.replace("localhost:50051", address)
    run = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=4 * RUN_TIMEOUT,
        env={**os.environ, "TOKEN": carol},
    )
    assert run.returncode == 0, run.stderr
    objects = parse_stream(run.stdout)
    assert of(objects, "error") == []
    rooms = next(o["rooms"] for o in objects if "rooms" in o)
    assert rooms == [{"name": "general", "last_seq": "1", "read_seq": "1"}]
    directs = next(o["directs"] for o in objects if "directs" in o)
    assert directs == [{"with_user": "bob", "last_seq": "3", "read_seq": "3"}]
