"""``/reply``, ``/edit``, ``s/old/new/``, ``/delete`` and ``/react`` in ``chatrpc-client``,
as a user runs it: piped into a subprocess against a real server."""

from __future__ import annotations

import json

from chatrpc.tui import HELP, Formatter, parse_line
from chatrpc.v1 import chat_pb2 as pb

from .test_cli_commands import bodies, run_client


def test_help_lists_the_commands_that_change_messages() -> None:
    for usage in ("/reply SEQ TEXT", "/edit [SEQ] TEXT", "s/OLD/NEW/", "/delete [SEQ]"):
        assert any(line.startswith(usage) for line in HELP), usage
    assert any("/react -SEQ EMOJI" in line for line in HELP)


def test_changes_are_shown_as_irc_style_notices() -> None:
    f = Formatter("alice")
    edit = pb.Message(seq=2, room="general", sender="bob", kind=pb.Message.EDIT, target_seq=1)
    edit.text = "new text"
    assert f.message(edit).endswith("#general * bob edited #1: new text")
    gone = pb.Message(seq=3, room="general", sender="bob", kind=pb.Message.DELETE, target_seq=1)
    assert f.message(gone).endswith("#general * bob deleted #1")
    react = pb.Message(seq=4, to_user="alice", sender="bob", kind=pb.Message.REACTION)
    react.target_seq, react.emoji = 1, "👍"
    assert f.message(react).endswith("@bob * bob reacted 👍 to #1")
    current = pb.Message(seq=1, room="general", sender="bob", text="x", edited=True, reply_to=7)
    current.reactions.add(emoji="👍", users=["alice", "carol"])
    assert f.message(current).endswith("#general <bob> (re #7) x (edited)  👍2")
    assert Formatter("alice", seqs=True).message(current).startswith("[")
    assert " #1] #general <bob>" in Formatter("alice", seqs=True).message(current)


def test_a_typed_line_like_s_old_new_fixes_the_last_message() -> None:
    cmd = parse_line("s/helo/hello/")
    assert cmd is not None and (cmd.name, cmd.old, cmd.text) == ("subst", "helo", "hello")


def test_piped_mode_replies_edits_deletes_and_reacts(server_process, client_env):
    script = "\n".join(
        [
            "helo wrld",
            "s/wrld/world/",
            "/edit hello world!",
            "second",
            "/delete",
            "/react 1 👍",
            "/react -1 👍",
            "/react #1 🎉",
            "/reply 1 indeed",
            "/history 3",
        ]
    )
    address = server_process.address
    result = run_client(client_env, "--user", "alice", "--server", address, stdin=script + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert bodies(result.stdout) == [
        "-- you joined #general (online: alice)",
        "#general <alice> helo wrld",
        "#general * alice edited #1: helo world",
        "#general * alice edited #1: hello world!",
        "#general <alice> second",
        "#general * alice deleted #4",
        "#general * alice reacted 👍 to #1",
        "#general * alice took back 👍 on #1",
        "#general * alice reacted 🎉 to #1",
        "#general <alice> (re #1) indeed",
        # History: the newest three items, the message 1 they name in its current state.
        "#general * alice took back 👍 on #1",
        "#general * alice reacted 🎉 to #1",
        "#general <alice> (re #1) indeed",
    ]
    later = run_client(client_env, "--user", "alice", "--server", address, stdin="/history 10\n")
    lines = bodies(later.stdout)
    assert "#general <alice> hello world! (edited)  🎉1" in lines
    assert "#general <alice> (deleted)" in lines


def test_json_mode_prints_change_items_with_their_kind(server_process, client_env):
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        server_process.address,
        "--json",
        stdin="hi\n/edit hi there\n/react 1 👋\n",
    )
    assert result.returncode == 0, result.stderr
    messages = [o["message"] for o in map(json.loads, result.stdout.splitlines()) if "message" in o]
    assert [(m.get("kind", "MESSAGE"), m.get("targetSeq")) for m in messages] == [
        ("MESSAGE", None),
        ("EDIT", "1"),
        ("REACTION", "1"),
    ]
    assert messages[1]["text"] == "hi there" and messages[2]["emoji"] == "👋"


def test_a_change_that_is_refused_is_one_line_on_stderr_and_the_rest_goes_on(
    server_process, client_env
):
    address = server_process.address
    run_client(client_env, "--user", "alice", "--server", address, stdin="mine\n")
    result = run_client(
        client_env,
        "--user",
        "bob",
        "--server",
        address,
        stdin="/edit\n/edit fix\n/delete 1\n/react 99 👍\n/react 1 ok\ns/x/y/\nstill here\n",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "chatrpc-client: line 1: usage: /edit [SEQ] TEXT",
        "chatrpc-client: you have no message in #general to change: name one by its seq",
        "chatrpc-client: #1 in #general not changed: PERMISSION_DENIED:"
        " message #1 in #general is alice's: only its author may delete it",
        "chatrpc-client: #99 in #general not changed: NOT_FOUND: no message #99 in #general",
        "chatrpc-client: #1 in #general not changed: INVALID_ARGUMENT:"
        " a reaction is an emoji, not letters, digits or spaces",
        "chatrpc-client: you have no message in #general to change: name one by its seq",
    ]
    assert bodies(result.stdout)[-1] == "#general <bob> still here"


def test_your_last_message_can_come_from_the_rooms_context_or_history(server_process, client_env):
    address = server_process.address
    run_client(client_env, "--user", "alice", "--server", address, stdin="from before\n")
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        address,
        stdin="/history 1\ns/before/earlier/\n",
    )
    assert result.returncode == 0, result.stderr
    assert bodies(result.stdout)[-1] == "#general * alice edited #1: from earlier"
