"""``chatrpc-client`` as a user runs it: real subprocesses against a real server.

Exit codes are part of the interface: 0 ok, 1 server or connection failure,
2 usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import BIN, WAIT, start_server_process
from .procs import Output, free_port

CLIENT = str(BIN / "chatrpc-client")

#: Bounds a whole client run: a hang fails the test instead of stalling it.
RUN_TIMEOUT = 30.0


def run_client(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Runs ``chatrpc-client ARGS`` with ``stdin`` piped in, to its end."""
    return subprocess.run(
        [CLIENT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Checks the exit code and that stderr is exactly one ``chatrpc-client: ...`` line."""
    assert result.returncode == code, f"exit {result.returncode}, expected {code}: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("chatrpc-client: "), lines[0]
    return lines[0]


class Listener:
    """``chatrpc-client --listen`` with nothing on stdin: it stays connected and prints."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [CLIENT, "--listen", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.out = Output(self.proc.stdout)
        self.err = Output(self.proc.stderr)

    def interrupt(self, timeout: float = WAIT) -> int:
        """Ctrl-C; returns the exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        self.out.join()
        self.err.join()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self.out.join()
        self.err.join()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def listen(client_env: dict[str, str]) -> Iterator[Callable[..., Listener]]:
    """Starts listening clients (``listen(env, *args)``) and stops them afterwards."""
    started: list[Listener] = []

    def start(env: dict[str, str], *args: str) -> Listener:
        listener = Listener(env, *args)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.close()


def other_config(client_env: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    """The environment of another person: their own config directory."""
    return {**client_env, "XDG_CONFIG_HOME": str(tmp_path / name)}


# -- piped mode --------------------------------------------------------------------------


def test_piped_lines_are_sent_to_the_room_printed_back_and_the_client_exits_0(
    server_process, client_env
):
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        server_process.address,
        "--room",
        "general",
        stdin="a\nb\n",
    )
    lines = ok(result).splitlines()
    assert result.stderr == ""
    assert lines[0] == "-- you joined #general (online: alice)"
    assert [ln.split("] ", 1)[1] for ln in lines[1:]] == [
        "#general <alice> a",
        "#general <alice> b",
    ]
    for ln in lines[1:]:
        assert ln.startswith("["), "each message has a timestamp"


def test_empty_input_just_joins_and_exits_0(server_process, client_env):
    result = run_client(client_env, "--user", "alice", "--server", server_process.address)
    assert ok(result).splitlines() == ["-- you joined #general (online: alice)"]


def test_joining_a_room_past_the_presence_cap_prints_how_many_are_online(
    client_env, tmp_path, listen
):
    server = start_server_process(
        "--db", str(tmp_path / "chat.db"), "--presence-max-sessions", "1", log_dir=tmp_path
    )
    try:
        bob = listen(
            other_config(client_env, tmp_path, "bob"), "--user", "bob", "--server", server.address
        )
        assert bob.out.wait_line("-- you joined #general") == "-- you joined #general (online: bob)"
        result = run_client(client_env, "--user", "alice", "--server", server.address)
        assert ok(result).splitlines() == ["-- you joined #general (2 online; /who lists them)"]
    finally:
        server.stop(signal.SIGKILL)


def test_a_listening_client_prints_what_another_user_sends(
    server_process, client_env, tmp_path, listen
):
    address = server_process.address
    bob = listen(other_config(client_env, tmp_path, "bob"), "--user", "bob", "--server", address)
    bob.out.wait_line("-- you joined #general")

    sent = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        address,
        stdin="hello bob\n/msg bob psst\n",
    )
    ok(sent)

    assert bob.out.wait_line("<alice> hello bob").endswith("#general <alice> hello bob")
    assert bob.out.wait_line("<alice> psst").endswith("@alice <alice> psst")
    bob.out.wait_line("-- alice joined #general")

    # Ctrl-C ends a listening client quietly: leaving is not a failure.
    assert bob.interrupt() == 0
    assert "Traceback" not in bob.err.text, bob.err.text
    assert bob.err.text == ""


def test_a_dm_sent_with_msg_is_echoed_to_the_sender_and_not_shown_in_the_room(
    server_process, client_env, tmp_path, listen
):
    address = server_process.address
    ok(run_client(other_config(client_env, tmp_path, "bob"), "--user", "bob", "--server", address))
    carol = listen(
        other_config(client_env, tmp_path, "carol"), "--user", "carol", "--server", address
    )
    carol.out.wait_line("-- you joined #general")

    sent = ok(
        run_client(
            client_env,
            "--user",
            "alice",
            "--server",
            address,
            stdin="/msg bob for bob only\nfor everyone\n",
        )
    )
    assert [ln.split("] ", 1)[1] for ln in sent.splitlines() if ln.startswith("[")] == [
        "@bob <alice> for bob only",
        "#general <alice> for everyone",
    ]
    carol.out.wait_line("<alice> for everyone")
    assert "for bob only" not in carol.out.text

    # bob was offline; his answer continues the stored conversation (alice's DM is seq 1).
    bob_json = ok(
        run_client(
            other_config(client_env, tmp_path, "bob"),
            "--user",
            "bob",
            "--server",
            address,
            "--json",
            stdin="/msg alice got it\n",
        )
    )
    echoes = [json.loads(ln)["message"] for ln in bob_json.splitlines() if '"message"' in ln]
    assert [(m["toUser"], m["text"], m["seq"]) for m in echoes] == [("alice", "got it", "2")]


def test_json_mode_prints_one_json_object_per_event(server_process, client_env, tmp_path):
    address = server_process.address
    ok(run_client(other_config(client_env, tmp_path, "bob"), "--user", "bob", "--server", address))
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        address,
        "--room",
        "dev",
        "--json",
        stdin="one\n/msg bob two\nthree\n",
    )
    events = [json.loads(ln) for ln in ok(result).splitlines()]
    assert all(isinstance(e, dict) and len(e) == 1 for e in events), events
    assert events[0]["joined"]["room"] == "dev"
    assert events[0]["joined"]["members"] == ["alice"]
    assert events[0]["joined"]["epoch"]
    messages = [e["message"] for e in events if "message" in e]
    assert [
        (m.get("room"), m.get("toUser"), m["sender"], m["text"], m["seq"]) for m in messages
    ] == [
        ("dev", None, "alice", "one", "1"),
        (None, "bob", "alice", "two", "1"),
        ("dev", None, "alice", "three", "2"),
    ]
    for m in messages:
        assert m["clientMsgId"]
        assert m["sentAt"].endswith("Z")


# -- tokens and names ------------------------------------------------------------------


def test_the_token_file_is_private_and_a_second_run_as_the_same_user_works(
    server_process, client_env
):
    address = server_process.address
    ok(run_client(client_env, "--user", "alice", "--server", address, stdin="first\n"))

    tokens = Path(client_env["XDG_CONFIG_HOME"]) / "chatrpc" / "tokens.json"
    assert tokens.is_file()
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens.parent.stat().st_mode) & 0o077 == 0, "the directory is private"
    stored = json.loads(tokens.read_text())
    assert list(stored) == [f"alice@{address}"]
    assert stored[f"alice@{address}"]

    again = ok(run_client(client_env, "--user", "alice", "--server", address, stdin="second\n"))
    assert again.splitlines()[-1].endswith("#general <alice> second")
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600


def test_someone_else_cannot_take_a_claimed_name(server_process, client_env, tmp_path):
    address = server_process.address
    ok(run_client(client_env, "--user", "alice", "--server", address))

    result = run_client(
        other_config(client_env, tmp_path, "mallory"),
        "--user",
        "alice",
        "--server",
        address,
        stdin="I am alice\n",
    )
    line = one_line_error(result, 1)
    assert "alice" in line
    assert result.stdout == "", "nothing was sent"
    tokens = tmp_path / "mallory" / "chatrpc" / "tokens.json"
    assert not tokens.exists() or "alice" not in tokens.read_text()


def test_a_name_differing_only_in_case_is_the_same_name(server_process, client_env, tmp_path):
    address = server_process.address
    ok(run_client(client_env, "--user", "alice", "--server", address))
    result = run_client(
        other_config(client_env, tmp_path, "x"), "--user", "Alice", "--server", address
    )
    one_line_error(result, 1)
    # The owner is recognised whatever the case.
    ok(run_client(client_env, "--user", "ALICE", "--server", address))


# -- errors --------------------------------------------------------------------------------


def test_an_unreachable_server_gives_one_line_and_exit_1(client_env):
    address = f"127.0.0.1:{free_port()}"
    result = run_client(client_env, "--user", "alice", "--server", address, stdin="hello\n")
    line = one_line_error(result, 1)
    assert line.startswith(f"chatrpc-client: cannot reach {address}"), line
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--user", "alice", "--server", "nocolon"], id="server-without-port"),
        pytest.param(["--server", "127.0.0.1:1"], id="missing-user"),
        pytest.param(["--user", "alice", "--no-such-option"], id="unknown-option"),
    ],
)
def test_bad_arguments_exit_2_without_a_traceback(client_env, args):
    env = {k: v for k, v in client_env.items() if k not in ("CHATRPC_USER", "CHATRPC_SERVER")}
    result = run_client(env, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("chatrpc-client: error: ")
    assert result.stdout == ""


def test_a_name_the_server_does_not_allow_is_a_usage_error(server_process, client_env):
    result = run_client(client_env, "--user", "bad name!", "--server", server_process.address)
    line = one_line_error(result, 2)
    assert "bad name!" in line


def test_a_send_refused_by_the_server_gives_one_line_and_exit_1(server_process, client_env):
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        server_process.address,
        stdin="/msg nobody are you there?\nthis one is fine\n",
    )
    line = one_line_error(result, 1)
    assert "nobody" in line
    assert "#general <alice> this one is fine" in result.stdout, "the other lines were sent"


def test_the_client_reads_user_and_server_from_the_environment(server_process, client_env):
    env = {**client_env, "CHATRPC_USER": "alice", "CHATRPC_SERVER": server_process.address}
    out = ok(run_client(env, stdin="from env\n"))
    assert out.splitlines()[-1].endswith("#general <alice> from env")


def test_version_and_help_exit_0(client_env):
    for flag in ("--version", "--help"):
        result = run_client(client_env, flag)
        assert result.returncode == 0, result.stderr
        assert "chatrpc-client" in result.stdout


def test_the_client_never_leaves_a_traceback_when_the_server_goes_away(
    server_process, client_env, listen
):
    listener = listen(client_env, "--user", "alice", "--server", server_process.address)
    listener.out.wait_line("-- you joined #general")
    assert server_process.stop(signal.SIGTERM) == 0
    # The client notices and says it is reconnecting, in one line, without a traceback.
    line = listener.err.wait_line("chatrpc-client: reconnecting")
    assert "UNAVAILABLE" in line
    assert listener.interrupt() == 0
    assert "Traceback" not in listener.err.text, listener.err.text
