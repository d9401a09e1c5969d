"""``/keep on|off`` in ``chatrpc-client``: parsing, how the KEEP event looks, and piped
into a subprocess against a real server (an owner keeps the room, a member is refused)."""

from __future__ import annotations

import pytest

from chatrpc.tui import HELP, Formatter, parse_line
from chatrpc.tui.commands import Command, CommandError
from chatrpc.v1 import chat_pb2 as pb

from .test_cli_commands import bodies, run_client, stderr_line


def test_keep_parses_on_and_off_and_is_in_help() -> None:
    assert parse_line("/keep ON") == Command("keep", flag="on")
    assert parse_line("/keep off") == Command("keep", flag="off")
    assert any(line.startswith("/keep on|off") for line in HELP)


@pytest.mark.parametrize("line", ["/keep", "/keep maybe", "/keep on now"])
def test_a_malformed_keep_gets_its_usage(line: str) -> None:
    with pytest.raises(CommandError, match=r"usage: /keep on\|off"):
        parse_line(line)


def test_the_keep_event_says_whether_the_room_is_kept() -> None:
    f = Formatter("alice")
    kept = pb.Message(seq=3, room="hall", sender="bob", kind=pb.Message.KEEP, kept=True)
    assert f.message(kept).endswith("#hall * bob kept the room")
    let_go = pb.Message(seq=4, room="hall", kind=pb.Message.KEEP, text="done")
    assert f.message(let_go).endswith(
        "#hall * the operator let the room be pruned when empty (done)"
    )


def test_piped_mode_keeps_the_current_room_and_lists_it_kept(server_process, client_env):
    address = server_process.address
    assert run_client(client_env, "--user", "bob", "--server", address).returncode == 0
    script = "/join den\n/keep on\n/rooms den\n/keep off\n/keep on\n/history 3\n"
    result = run_client(client_env, "--user", "alice", "--server", address, stdin=script)
    assert result.returncode == 0, result.stderr
    lines = bodies(result.stdout)
    assert any("#den (" in ln and ", kept)" in ln for ln in lines), lines
    assert lines[-3:] == [
        "#den * alice kept the room",
        "#den * alice let the room be pruned when empty",
        "#den * alice kept the room",
    ]
    # bob is a member: only owners keep a room; one line on stderr, exit 1.
    refused = run_client(
        client_env, "--user", "bob", "--server", address, "--room", "den", stdin="/keep off\n"
    )
    assert "only owners may keep or let go of #den" in stderr_line(refused, 1)
