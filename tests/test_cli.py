"""``chatrpc-client`` as a user runs it: real subprocesses against a real server.

Exit codes are part of the interface: 0 ok, 1 server or connection failure,
2 usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatrpc.certs import make_dev_certs

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


# -- scripts keep every line; one error each; passwords; transport errors --------------------


def test_a_piped_flood_is_sent_in_full_and_in_order_at_the_rate_the_server_allows(
    tmp_path, client_env
):
    sp = start_server_process(
        "--store", "memory://", "--rate-limit", "20", "--rate-burst", "5", log_dir=tmp_path
    )
    try:
        lines = "".join(f"line {i}\n" for i in range(1, 41))
        result = run_client(
            client_env,
            "--user",
            "alice",
            "--server",
            sp.address,
            "--room",
            "flood",
            "--json",
            stdin=lines,
        )
        out = ok(result)
        assert result.stderr == ""
        messages = [json.loads(ln)["message"] for ln in out.splitlines() if '"message"' in ln]
        assert [m["text"] for m in messages] == [f"line {i}" for i in range(1, 41)]
        assert [int(m["seq"]) for m in messages] == list(range(1, 41)), "stored once, in order"
        assert len({m["clientMsgId"] for m in messages}) == 40
    finally:
        sp.stop()


def test_a_refused_line_is_one_line_on_stderr_and_nothing_on_stdout(server_process, client_env):
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        server_process.address,
        stdin="/msg nobody hi\n",
    )
    line = one_line_error(result, 1)
    assert "NOT_FOUND" in line and "@nobody" in line, line
    assert result.stdout.splitlines() == ["-- you joined #general (online: alice)"]


def test_a_room_name_the_server_refuses_in_piped_input_exits_2(server_process, client_env):
    result = run_client(
        client_env,
        "--user",
        "alice",
        "--server",
        server_process.address,
        stdin="/join bad!room\n",
    )
    line = one_line_error(result, 2)
    assert "bad!room" in line
    assert "error" not in result.stdout


def test_password_env_naming_an_unset_or_empty_variable_is_a_usage_error(
    server_process, client_env
):
    env = {k: v for k, v in client_env.items() if k != "ALICE_PW"}
    args = ("--user", "alice", "--server", server_process.address, "--password-env", "ALICE_PW")
    line = one_line_error(run_client(env, *args), 2)
    assert "ALICE_PW" in line and "not set" in line
    line = one_line_error(run_client({**env, "ALICE_PW": ""}, *args), 2)
    assert "ALICE_PW" in line and "empty" in line
    # Nothing was claimed: the name is still free for anyone.
    assert ok(run_client(env, "--user", "alice", "--server", server_process.address))


def test_password_env_with_a_stored_token_sets_the_password_or_says_it_is_wrong(
    server_process, client_env, tmp_path
):
    address = server_process.address
    ok(run_client(client_env, "--user", "alice", "--server", address))  # claimed, no password
    args = ("--user", "alice", "--server", address, "--password-env", "PW")
    result = run_client({**client_env, "PW": "s3cret"}, *args)
    ok(result)
    assert result.stderr == "chatrpc-client: password set for alice\n"
    # From another machine (no stored token) the password now proves the name...
    elsewhere = other_config(client_env, tmp_path, "laptop")
    ok(run_client({**elsewhere, "PW": "s3cret"}, *args))
    # ... and a different password is refused, also where a token is stored.
    line = one_line_error(run_client({**client_env, "PW": "other"}, *args), 1)
    assert "wrong password" in line
    again = run_client({**client_env, "PW": "s3cret"}, *args)
    ok(again)
    assert again.stderr == "", "the same password again says nothing"


def test_new_password_env_changes_the_password(server_process, client_env, tmp_path):
    address = server_process.address
    base = ("--user", "alice", "--server", address)
    ok(run_client({**client_env, "PW": "one"}, *base, "--password-env", "PW"))
    result = run_client(
        {**client_env, "PW": "one", "NEW": "two"},
        *base,
        "--password-env",
        "PW",
        "--new-password-env",
        "NEW",
    )
    ok(result)
    assert "password changed for alice" in result.stderr
    elsewhere = other_config(client_env, tmp_path, "laptop")
    line = one_line_error(run_client({**elsewhere, "PW": "one"}, *base, "--password-env", "PW"), 1)
    assert "wrong password" in line
    ok(run_client({**elsewhere, "PW": "two"}, *base, "--password-env", "PW"))


@pytest.fixture(scope="module")
def dev_certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize(
    ("server_tls", "client_tls", "expected"),
    [
        pytest.param("tls", "", "it expects TLS (add --tls-ca", id="plaintext-to-tls"),
        pytest.param("mtls", "ca", "it wants a client certificate", id="no-client-cert"),
        pytest.param("", "ca", "the server does not speak TLS", id="tls-to-plaintext"),
    ],
)
def test_a_tls_mismatch_says_what_to_do(
    tmp_path, client_env, dev_certs, server_tls, client_tls, expected
):
    tls_args: list[str] = []
    if server_tls:
        tls_args = [
            "--tls-cert",
            str(dev_certs.server_cert),
            "--tls-key",
            str(dev_certs.server_key),
        ]
    if server_tls == "mtls":
        tls_args += ["--tls-client-ca", str(dev_certs.ca)]
    sp = start_server_process("--store", "memory://", *tls_args, log_dir=tmp_path)
    try:
        address = f"localhost:{sp.port}"
        client_args = ["--tls-ca", str(dev_certs.ca)] if client_tls else []
        result = run_client(client_env, "--user", "alice", "--server", address, *client_args)
        line = one_line_error(result, 1)
        assert line.startswith(f"chatrpc-client: cannot reach {address}: "), line
        assert expected in line, line
        assert "failed to connect to all addresses" not in line
    finally:
        sp.stop()


def test_an_unknown_host_is_said_in_words(client_env):
    result = run_client(client_env, "--user", "alice", "--server", "nosuchhost.invalid:50051")
    line = one_line_error(result, 1)
    assert line == "chatrpc-client: cannot reach nosuchhost.invalid:50051: no such host", line


def test_a_listening_client_says_connection_lost_and_rejoins_quietly(tmp_path, client_env, listen):
    port = free_port()
    db = str(tmp_path / "chat.db")
    first = start_server_process("--db", db, "--port", str(port), log_dir=tmp_path)
    second = None
    try:
        listener = listen(client_env, "--user", "bob", "--server", f"127.0.0.1:{port}")
        listener.out.wait_line("-- you joined #general")
        first.stop(signal.SIGKILL)
        line = listener.err.wait_line("reconnecting")
        assert line == "chatrpc-client: reconnecting (connection lost)", line
        second = start_server_process("--db", db, "--port", str(port), log_dir=tmp_path)
        listener.err.wait_line("reconnected", timeout=20)
        result = run_client(
            other_config(client_env, tmp_path, "alice"),
            "--user",
            "alice",
            "--server",
            f"127.0.0.1:{port}",
            stdin="after\n",
        )
        ok(result)
        listener.out.wait_line("<alice> after")
        assert listener.out.text.count("you joined #general") == 1, listener.out.text
        assert listener.interrupt() == 0
    finally:
        for sp in (first, second):
            if sp is not None:
                sp.stop(signal.SIGKILL)


def test_a_listening_client_whose_token_the_server_forgot_logs_in_again(
    tmp_path, client_env, listen
):
    port = free_port()
    address = f"127.0.0.1:{port}"
    first = start_server_process("--store", "memory://", "--port", str(port), log_dir=tmp_path)
    second = None
    try:
        listener = listen(client_env, "--user", "bob", "--server", address)
        listener.out.wait_line("-- you joined #general")
        first.stop()
        # A new server without the old one's accounts: bob's token means nothing there.
        second = start_server_process("--store", "memory://", "--port", str(port), log_dir=tmp_path)
        listener.err.wait_line("logging in again", timeout=20)
        ok(
            run_client(
                other_config(client_env, tmp_path, "alice"),
                "--user",
                "alice",
                "--server",
                address,
                stdin="hello again\n",
            )
        )
        listener.out.wait_line("<alice> hello again")
        assert listener.proc.poll() is None, "still listening"
        assert listener.interrupt() == 0
    finally:
        for sp in (first, second):
            if sp is not None:
                sp.stop(signal.SIGKILL)


def test_a_second_server_on_the_same_default_database_warns(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    first = start_server_process("--log-level", "warning", env=env, log_dir=tmp_path)
    second = third = None
    try:
        second = start_server_process("--log-level", "warning", env=env, log_dir=tmp_path)
        db = tmp_path / "data" / "chatrpc" / "chat.db"
        assert f"another chatrpc-server (pid {first.proc.pid}) is using {db}" in second.stderr()
        assert "another chatrpc-server" not in first.stderr()
        # Its own file: no warning.
        third = start_server_process(
            "--log-level", "warning", "--db", str(tmp_path / "own.db"), env=env, log_dir=tmp_path
        )
        assert "another chatrpc-server" not in third.stderr()
    finally:
        for sp in (first, second, third):
            if sp is not None:
                sp.stop()
