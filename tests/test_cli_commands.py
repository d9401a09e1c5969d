"""Commands and formatting shared by both faces of ``chatrpc-client``.

The parser and the formatter are plain functions, tested directly; piped mode
is tested as a user runs it, as a subprocess against a real server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from chatrpc.cli_io import LineReader
from chatrpc.tui import (
    HELP,
    PALETTE,
    Command,
    CommandError,
    Formatter,
    colors_wanted,
    nick_color,
    parse_line,
    printable,
)
from chatrpc.v1 import chat_pb2 as pb

from .conftest import BIN, WAIT

CLIENT = str(BIN / "chatrpc-client")


def run_client(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLIENT, *args], input=stdin, capture_output=True, text=True, env=env, timeout=30
    )


def stderr_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Checks the exit code and that stderr is one ``chatrpc-client: ...`` line."""
    assert result.returncode == code, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatrpc-client: "), result.stderr
    return lines[0]


def bodies(stdout: str) -> list[str]:
    """Message lines without their ``[HH:MM]`` stamp; other lines as they are."""
    return [ln.split("] ", 1)[1] if ln.startswith("[") else ln for ln in stdout.splitlines()]


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello there", Command("say", text="hello there")),
        ("  indented stays indented\n", Command("say", text="  indented stays indented")),
        ("//not a command", Command("say", text="/not a command")),
        ("/join #Dev", Command("join", target="dev")),
        ("/JOIN dev", Command("join", target="dev")),
        ("/leave", Command("leave")),
        ("/part dev", Command("leave", target="dev")),
        ("/switch dev", Command("switch", target="dev")),
        ("/msg @Bob hi  there", Command("msg", target="bob", text="hi  there")),
        ("/me waves  slowly", Command("me", text="waves  slowly")),
        ("/who", Command("who")),
        ("/names dev", Command("who", target="dev")),
        ("/rooms", Command("rooms")),
        ("/rooms Dev", Command("rooms", target="dev")),
        ("/list more", Command("rooms", target="more")),
        ("/history", Command("history", count=20)),
        ("/history 5", Command("history", count=5)),
        ("/help", Command("help")),
        ("/quit bye all", Command("quit")),
        ("/exit", Command("quit")),
    ],
)
def test_a_line_is_parsed_into_the_command_it_names(line, command):
    assert parse_line(line) == command


@pytest.mark.parametrize("line", ["", "   ", "\n"])
def test_a_blank_line_is_no_command(line):
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("/frob", "unknown command /frob: /help lists the commands"),
        ("/join", "usage: /join ROOM"),
        ("/join a b", "usage: /join ROOM"),
        ("/switch", "usage: /switch ROOM"),
        ("/msg bob", "usage: /msg USER TEXT"),
        ("/msg", "usage: /msg USER TEXT"),
        ("/me", "usage: /me TEXT"),
        ("/history lots", "usage: /history [N] (N from 1 to 1000)"),
        ("/history 0", "usage: /history [N] (N from 1 to 1000)"),
        ("/who a b", "usage: /who [ROOM]"),
    ],
)
def test_a_wrong_command_gets_a_one_line_hint(line, hint):
    with pytest.raises(CommandError) as info:
        parse_line(line)
    assert str(info.value) == hint


def test_help_names_every_command():
    text = "\n".join(HELP)
    for name in ("join", "leave", "switch", "msg", "me", "who", "rooms", "history", "help", "quit"):
        assert f"/{name}" in text


# -- formatting ---------------------------------------------------------------------------


def message(sender: str, text: str, *, room: str = "", to_user: str = "") -> pb.Message:
    m = pb.Message(seq=1, sender=sender, text=text, sent_at=Timestamp(seconds=int(time.time())))
    if room:
        m.room = room
    else:
        m.to_user = to_user
    return m


def test_messages_actions_and_dms_read_as_documented():
    f = Formatter("alice")
    stamp = time.strftime("[%H:%M]", time.localtime())
    assert f.message(message("bob", "hi", room="general")) == f"{stamp} #general <bob> hi"
    assert f.message(message("bob", "/me waves", room="general")) == f"{stamp} #general * bob waves"
    assert f.message(message("bob", "psst", to_user="alice")) == f"{stamp} [dm] <bob -> alice> psst"
    assert f.message(message("alice", "ok", to_user="bob")) == f"{stamp} [dm] <alice -> bob> ok"
    assert f.message(message("alice", "/me nods", to_user="bob")) == (
        f"{stamp} [dm] * alice nods (to bob)"
    )
    piped = Formatter("alice", dm_arrows=False)
    assert piped.message(message("bob", "psst", to_user="alice")) == f"{stamp} @bob <bob> psst"
    assert piped.message(message("bob", "/me hides", to_user="alice")) == (
        f"{stamp} @bob * bob hides"
    )
    presence = pb.ServerEvent(
        presence=pb.Presence(room="general", user="bob", kind=pb.Presence.JOINED)
    )
    assert f.event(presence) == "-- bob joined #general"


def test_control_characters_in_a_message_cannot_drive_the_readers_terminal():
    f = Formatter("alice", color=True)
    line = f.message(message("mallory", "\x1b[2J\x1b]0;pwned\x07ok\u202etxt.exe\n", room="x"))
    assert "\x1b[2J" not in line and "\x07" not in line and "\u202e" not in line
    assert "^[[2J^[]0;pwned^Gok\\u202etxt.exe^J" in line
    assert printable("plain text, émoji 🎉") == "plain text, émoji 🎉"


def test_a_nick_has_the_same_color_every_time_and_colors_can_be_off():
    assert nick_color("bob") == nick_color("bob")
    assert len({nick_color(n) for n in ("alice", "bob", "carol", "dave", "eve", "mallory")}) > 1
    colored = Formatter("alice", color=True).message(message("bob", "hi", room="r"))
    code = PALETTE[nick_color("bob")][0]
    assert f"\x1b[{code}mbob\x1b[0m" in colored
    plain = Formatter("alice", color=False).message(message("bob", "hi", room="r"))
    assert "\x1b" not in plain


def test_colors_are_off_when_no_color_is_set_or_output_is_not_a_terminal(monkeypatch):
    class Tty:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert colors_wanted(Tty())  # type: ignore[arg-type]
    assert not colors_wanted(Pipe())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colors_wanted(Tty())  # type: ignore[arg-type]


# -- piped mode ----------------------------------------------------------------------------


def other(client_env: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    return {**client_env, "XDG_CONFIG_HOME": str(tmp_path / name)}


def test_piped_input_takes_the_same_commands_as_the_prompt(server_process, client_env, tmp_path):
    address = server_process.address
    bob_env = other(client_env, tmp_path, "bob")
    assert run_client(bob_env, "--user", "bob", "--server", address).returncode == 0
    script = "\n".join(
        [
            "/join dev",
            "hello dev",
            "/me waves",
            "/msg bob psst",
            "/switch general",
            "back in general",
            "//slash first",
            "/who dev",
            "/rooms",
            "/history 2",
            "/leave dev",
            "/quit",
            "never sent",
        ]
    )
    result = run_client(client_env, "--user", "alice", "--server", address, stdin=script + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert bodies(result.stdout) == [
        "-- you joined #general (online: alice)",
        "-- you joined #dev (online: alice)",
        "#dev <alice> hello dev",
        "#dev * alice waves",
        "@bob <alice> psst",
        "#general <alice> back in general",
        "#general <alice> /slash first",
        "-- online in #dev: alice",
        # The most recently active room first: general had the last message.
        "-- #general (1 online)",
        "-- #dev (1 online)",
        "#general <alice> back in general",
        "#general <alice> /slash first",
        "-- you left #dev",
    ]


def test_piped_history_prints_the_last_messages_of_the_room(server_process, client_env):
    address = server_process.address
    run_client(client_env, "--user", "alice", "--server", address, stdin="one\ntwo\nthree\n")
    result = run_client(
        client_env, "--user", "alice", "--server", address, stdin="/history 2\n/history\n"
    )
    assert result.returncode == 0, result.stderr
    assert bodies(result.stdout)[1:] == [
        "#general <alice> two",
        "#general <alice> three",
        "#general <alice> one",
        "#general <alice> two",
        "#general <alice> three",
    ]


def test_piped_mode_shows_context_only_when_asked(server_process, client_env):
    address = server_process.address
    run_client(client_env, "--user", "alice", "--server", address, stdin="a\nb\nc\n")
    plain = run_client(client_env, "--user", "alice", "--server", address)
    assert bodies(plain.stdout) == ["-- you joined #general (online: alice)"]
    with_context = run_client(client_env, "--user", "alice", "--server", address, "--context", "2")
    assert bodies(with_context.stdout) == [
        "-- you joined #general (online: alice)",
        "#general <alice> b",
        "#general <alice> c",
    ]


def test_an_unknown_command_in_piped_input_is_reported_and_the_rest_is_sent(
    server_process, client_env
):
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        server_process.address,
        stdin="before\n/frob\nafter\n",
    )
    line = stderr_line(result, 1)
    assert line == "chatrpc-client: line 2: unknown command /frob: /help lists the commands"
    assert bodies(result.stdout)[1:] == ["#general <alice> before", "#general <alice> after"]


def test_json_mode_prints_command_results_as_json_objects(server_process, client_env):
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        server_process.address,
        "--json",
        stdin="hi\n/who\n/rooms\n/history 1\n",
    )
    assert result.returncode == 0, result.stderr
    objects = [json.loads(ln) for ln in result.stdout.splitlines()]
    by_key = {next(iter(o)): o[next(iter(o))] for o in objects}
    assert by_key["members"] == {
        "room": "general",
        "members": ["alice"],
        "roles": [{"user": "alice", "role": "OWNER"}],
    }
    assert [r["name"] for r in by_key["rooms"]["rooms"]] == ["general"]
    assert [m["text"] for m in by_key["history"]["messages"]] == ["hi"]


def test_a_room_the_server_refuses_is_a_usage_error(server_process, client_env):
    result = run_client(
        client_env, "--user", "alice", "--server", server_process.address, "--room", "bad room!"
    )
    line = stderr_line(result, 2)
    assert line.startswith("chatrpc-client: cannot join #bad room!: "), line


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_listening_client_leaves_cleanly_with_exit_0_on_a_signal(server_process, client_env, sig):
    proc = subprocess.Popen(
        [CLIENT, "--listen", "--user", "alice", "--server", server_process.address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=client_env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("-- you joined #general")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


def test_a_client_waiting_on_stdin_leaves_cleanly_on_sigterm(server_process, client_env):
    """stdin is a pipe nobody writes to or closes: the read must not keep it alive."""
    proc = subprocess.Popen(
        [CLIENT, "--user", "alice", "--server", server_process.address],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=client_env,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdin.write("first\n")
        proc.stdin.flush()
        assert proc.stdout.readline().startswith("-- you joined #general")
        assert proc.stdout.readline().endswith("#general <alice> first\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_a_listening_client_whose_reader_goes_away_exits_quietly(
    server_process, client_env, tmp_path
):
    """``chatrpc-client --listen | head -1``: no BrokenPipeError, no traceback."""
    address = server_process.address
    proc = subprocess.Popen(
        [CLIENT, "--listen", "--user", "alice", "--server", address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=client_env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("-- you joined #general")
        proc.stdout.close()  # the reader is gone, as when head has its line
        bob = run_client(other(client_env, tmp_path, "bob"), "--user", "bob", "--server", address)
        assert bob.returncode == 0, bob.stderr
        assert proc.wait(WAIT) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_stdin_reader_ends_quietly_when_the_program_ends_under_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line waiting for room in the reader's queue when the event loop ends (Ctrl-C
    on a listening client, say): the reader thread stops without a traceback."""
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: failures.append(a.exc_value))
    r, w = os.pipe()
    os.write(w, b"line\n" * 1005)  # more than the queue holds
    os.close(w)
    threads: list[threading.Thread] = []
    stream = os.fdopen(r)

    async def main() -> None:
        reader = LineReader(stream)
        threads.extend(t for t in threading.enumerate() if t.name == "stdin")
        for _ in range(1000):  # the thread fills the queue, then waits for room
            if reader._queue.full():
                break
            await asyncio.sleep(0.01)
        assert reader._queue.full()

    asyncio.run(main())  # ends with the thread's put still waiting: it is cancelled
    for t in threads:
        t.join(WAIT)
    stream.close()
    assert threads and not any(t.is_alive() for t in threads)
    assert failures == []
