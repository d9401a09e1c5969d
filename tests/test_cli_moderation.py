"""The moderation and blocking commands of ``chatrpc-client`` (``/topic``, ``/kick``,
``/ban``, ``/op``, ``/block``...): parsing, how room events look, and piped into a
subprocess against a real server."""

from __future__ import annotations

import pytest

from chatrpc.tui import HELP, Formatter, parse_line
from chatrpc.tui.commands import Command, CommandError
from chatrpc.v1 import chat_pb2 as pb

from .test_cli_commands import bodies, run_client, stderr_line


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/topic plans for today", Command("topic", text="plans for today", flag="set")),
        ("/topic -", Command("topic", flag="set")),
        ("/topic", Command("topic")),
        ("/private ON", Command("private", flag="on")),
        ("/invite Bob welcome", Command("invite", target="bob", text="welcome")),
        ("/kick troll spam, again", Command("kick", target="troll", text="spam, again")),
        ("/ban troll 2h flooding", Command("ban", target="troll", text="flooding", count=7200)),
        ("/ban troll 7d", Command("ban", target="troll", count=7 * 86400)),
        ("/ban troll for ever", Command("ban", target="troll", text="for ever")),
        ("/unban troll", Command("unban", target="troll")),
        ("/mute bob calm down", Command("mute", target="bob", text="calm down")),
        ("/op bob", Command("op", target="bob", flag="moderator")),
        ("/op bob owner", Command("op", target="bob", flag="owner")),
        ("/block mallory", Command("block", target="mallory")),
        ("/unblock", Command("unblock")),
    ],
)
def test_moderation_commands_parse(line: str, command: Command) -> None:
    assert parse_line(line) == command


@pytest.mark.parametrize(
    "line", ["/private maybe", "/kick", "/op bob king", "/unban a b", "/block", "/unmute"]
)
def test_malformed_moderation_commands_get_their_usage(line: str) -> None:
    with pytest.raises(CommandError, match="usage: /"):
        parse_line(line)


def test_help_lists_the_moderation_commands() -> None:
    for usage in ("/topic", "/private on|off", "/kick USER", "/ban USER", "/op USER", "/block"):
        assert any(line.startswith(usage) for line in HELP), usage


def test_room_events_are_shown_as_notices() -> None:
    f = Formatter("alice")

    def event(kind: int, **fields: object) -> pb.Message:
        return pb.Message(seq=5, room="hall", sender="bob", kind=kind, **fields)  # type: ignore[arg-type]

    assert f.message(event(pb.Message.KICK, target_user="troll", text="spam")).endswith(
        "#hall * bob kicked troll (spam)"
    )
    assert f.message(event(pb.Message.BAN, target_user="troll")).endswith(
        "* bob banned troll for good"
    )
    assert f.message(event(pb.Message.TOPIC, text="plans")).endswith("* bob set the topic: plans")
    assert f.message(event(pb.Message.PRIVACY, private=True)).endswith(
        "* bob made the room private (invite-only)"
    )
    assert f.message(
        event(pb.Message.ROLE, target_user="carol", role=pb.Member.MODERATOR)
    ).endswith("* bob made carol moderator")
    left = pb.ServerEvent(left=pb.Left(room="hall", reason="kicked by bob: spam"))
    assert f.event(left) == "-- you left #hall (kicked by bob: spam)"
    joined = pb.ServerEvent(
        joined=pb.Joined(room="hall", members=["alice"], topic="plans", private=True)
    )
    assert f.event(joined) == "-- you joined #hall (private) topic: plans (online: alice)"
    invitation = pb.ServerEvent(invitation=pb.Invitation(room="den", by="bob", reason="hi"))
    assert f.event(invitation) == "-- bob invited you to #den: hi (/join den)"


def test_piped_mode_moderates_the_current_room(server_process, client_env):
    address = server_process.address
    for user in ("bob", "troll"):
        assert run_client(client_env, "--user", user, "--server", address).returncode == 0
    lines = ["/join den", "/topic plans", "/op bob", "/ban troll 1h flooding", "/invite bob"]
    script = "\n".join([*lines, "/history 4"])
    result = run_client(client_env, "--user", "alice", "--server", address, stdin=script + "\n")
    assert result.returncode == 0, result.stderr
    history = bodies(result.stdout)[-4:]
    assert history[0] == "#den * alice set the topic: plans"
    assert history[1] == "#den * alice made bob moderator"
    assert history[2].startswith("#den * alice banned troll until ")
    assert history[2].endswith(" (flooding)")
    assert history[3] == "#den * alice invited bob"
    # bob, a moderator, may not act on alice, an owner: one line on stderr, exit 1.
    refused = run_client(
        client_env, "--user", "bob", "--server", address, "--room", "den", stdin="/kick alice\n"
    )
    assert "moderators act on members only" in stderr_line(refused, 1)
    # troll is banned: joining #den is refused.
    banned = run_client(
        client_env, "--user", "troll", "--server", address, "--room", "den", stdin="hi\n"
    )
    assert banned.returncode != 0 and "banned from #den" in banned.stderr
