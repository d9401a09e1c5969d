"""Configuring and watching a server: TOML file and environment, JSON logs, no secrets logged."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from chatrpc.client import ChatStream, channel, login, logout

from .conftest import start_server_process
from .procs import free_port

SERVER = str(Path(sys.executable).parent / "chatrpc-server")


def _server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVER, *args], capture_output=True, text=True, timeout=30, env=env or {"PATH": ""}
    )


def _effective(output: str) -> dict[str, tuple[str, str]]:
    """``--print-config``'s lines: key -> (value, where it came from)."""
    out = {}
    for line in output.splitlines():
        setting, _, source = line.partition("  # ")
        key, _, value = setting.partition(" = ")
        out[key] = (value, source)
    return out


def test_flags_win_over_the_environment_which_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "chatrpc.toml"
    config.write_text(
        'queue-size = 100\nrate_limit = 2.5\nsessions-per-user = 7\nstore = "memory://"\n'
    )
    env = {
        "CHATRPC_QUEUE_SIZE": "300",
        "CHATRPC_SESSIONS_PER_USER": "9",
        "CHATRPC_CONFIG": str(config),
    }
    result = _server("--print-config", "--sessions-per-user", "11", env=env)
    assert result.returncode == 0, result.stderr
    got = _effective(result.stdout)
    assert got["queue-size"] == ("300", "CHATRPC_QUEUE_SIZE")
    assert got["rate-limit"] == ("2.5", f"file {config}")
    assert got["sessions-per-user"] == ("11", "flag")
    assert got["store"] == ('"memory://"', f"file {config}")
    assert got["max-sessions"] == ("10000", "default")
    # What it prints is a config file that gives the same settings.
    again = tmp_path / "again.toml"
    again.write_text(result.stdout)
    reread = _effective(_server("--print-config", "--config", str(again)).stdout)
    assert {k: v for k, (v, _) in reread.items()} == {k: v for k, (v, _) in got.items()}


def test_a_flag_naming_the_store_overrides_a_file_that_names_another(tmp_path: Path) -> None:
    config = tmp_path / "chatrpc.toml"
    config.write_text('store = "memory://"\n')
    got = _effective(_server("--print-config", "--config", str(config), "--db", "/x.db").stdout)
    assert got["db"] == ('"/x.db"', "flag") and got["store"] == ('""', "flag")


def test_bad_settings_from_any_source_are_one_line_and_exit_2(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("queue-sise = 10\n")
    wrong_type = tmp_path / "type.toml"
    wrong_type.write_text('queue-size = "big"\n')
    broken = tmp_path / "broken.toml"
    broken.write_text("queue-size = \n")
    cases = [
        (["--config", str(unknown)], {}, f"{unknown}: unknown setting 'queue-sise'"),
        (["--config", str(wrong_type)], {}, "queue-size: expected a whole number, not 'big'"),
        (["--config", str(broken)], {}, "not valid TOML"),
        (["--config", str(tmp_path / "missing.toml")], {}, "no config file at"),
        ([], {"CHATRPC_QUEUE_SIZE": "0"}, "CHATRPC_QUEUE_SIZE: must be at least 1, not 0"),
        ([], {"CHATRPC_LOG_LEVEL": "loud"}, "CHATRPC_LOG_LEVEL: must be one of debug"),
        ([], {"CHATRPC_RATE_LIMIT": "fast"}, "CHATRPC_RATE_LIMIT: not a number: 'fast'"),
    ]
    for args, env, error in cases:
        result = _server(*args, "--store", "memory://", env={"PATH": "", **env})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (args, env, result.stderr)
        assert error in lines[0] and "Traceback" not in result.stderr, (error, lines)


async def test_json_logs_name_each_session_and_never_hold_text_passwords_or_tokens(
    tmp_path: Path,
) -> None:
    """At debug level, with a password login, messages, a malformed event and a logout."""
    sp = start_server_process(
        *("--store", "memory://", "--log-level", "debug", "--log-format", "json"),
        log_dir=tmp_path,
    )
    secret_text, secret_password = "the-launch-code-is-4417", "hunter2-very-secret"
    try:
        ch = channel(sp.address)
        try:
            token = (await login(ch, "alice", password=secret_password)).token
            stream = ChatStream(ch, token)
            await stream.join("general")
            await stream.send(secret_text, room="general", client_msg_id="c-1")
            await stream.send("", room="general", client_msg_id="c-2")  # refused: empty
            await stream.done_writing()
            async for _ in stream:
                pass
            await logout(ch, token)
        finally:
            await ch.close()
    finally:
        assert sp.stop(signal.SIGTERM) == 0
    log = sp.stderr()
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    opened = [
        r for r in records if r["message"].startswith("session ") and "opened" in r["message"]
    ]
    closed = [
        r for r in records if r["message"].startswith("session ") and "closed" in r["message"]
    ]
    assert len(opened) == len(closed) == 1
    assert opened[0]["user"] == "alice" and opened[0]["transport"] == "grpc"
    assert opened[0]["peer"].startswith("ipv4:127.0.0.1:")
    assert closed[0]["reason"] == "done" and closed[0]["session"] == opened[0]["session"]
    for secret in (secret_text, secret_password, token):
        assert secret not in log


async def _scrape(host: str, port: int, path: str = "/metrics") -> tuple[str, str]:
    """(status line, body) of a GET over plain HTTP."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        response = (await asyncio.wait_for(reader.read(), 10)).decode()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition("\r\n\r\n")
    return head.splitlines()[0], body


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


async def test_metrics_move_with_real_traffic_and_are_parsed_by_prometheus(
    tmp_path: Path,
) -> None:
    port = free_port()
    sp = start_server_process(
        *("--store", "memory://", "--log-level", "warning", "--metrics-port", str(port)),
        *("--rate-limit", "0.1", "--rate-burst", "4"),
        log_dir=tmp_path,
    )
    try:
        status, body = await _scrape("127.0.0.1", port)
        assert status == "HTTP/1.1 200 OK"
        assert _samples(body)[("chatrpc_messages_committed_total", ())] == 0
        ch = channel(sp.address)
        try:
            token = (await login(ch, "alice")).token
            stream = ChatStream(ch, token)
            await stream.join("general")
            for i in range(5):  # a burst of 4, less 0.1 for the join: the last two refused
                await stream.send(f"m{i}", room="general", client_msg_id=f"c{i}")
            got = []
            async for event in stream:
                got.append(event.WhichOneof("event"))
                if got.count("message") + got.count("error") == 5:
                    break
            _, body = await _scrape("127.0.0.1", port)
            live = _samples(body)
            assert live[("chatrpc_sessions_open", (("transport", "grpc"),))] == 1
            stream.cancel()
        finally:
            await ch.close()
        status, _ = await _scrape("127.0.0.1", port, "/nothing")
        assert status == "HTTP/1.1 404 Not Found"
        _, body = await _scrape("127.0.0.1", port)
        after = _samples(body)
    finally:
        assert sp.stop(signal.SIGTERM) == 0
    assert got.count("message") == 3 and got.count("error") == 2
    assert after[("chatrpc_logins_total", (("outcome", "created"),))] == 1
    assert after[("chatrpc_events_received_total", (("kind", "send"),))] == 5
    assert after[("chatrpc_events_received_total", (("kind", "join"),))] == 1
    assert after[("chatrpc_messages_committed_total", ())] == 3
    assert after[("chatrpc_rate_limited_total", ())] == 2
    assert after[("chatrpc_deliveries_total", ())] >= 3 + 2 + 1  # messages, errors, joined
    assert after[("chatrpc_calls_total", (("code", "OK"), ("method", "Login")))] == 1
    assert after[("chatrpc_store_append_seconds_count", ())] >= 1
    assert after[("chatrpc_events_per_write_count", ())] == after[("chatrpc_writes_total", ())]
    assert ("chatrpc_sessions_open", (("transport", "grpc"),)) not in after


def test_a_store_url_is_shown_without_its_password() -> None:
    from chatrpc.urls import redact

    assert redact("redis://:s3cret@10.0.0.5:6379/0") == "redis://:***@10.0.0.5:6379/0"
    assert redact("rediss://chat:s3cret@redis.internal/1") == "rediss://chat:***@redis.internal/1"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("sqlite:///var/lib/chatrpc/chat.db") == "sqlite:///var/lib/chatrpc/chat.db"
