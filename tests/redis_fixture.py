"""A real redis-server for the Redis store tests, on a free port, killed by pid."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = Path("/usr/bin/redis-server")
#: How long redis-server may take to accept connections.
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process in ``directory``; :meth:`restart` keeps its port and data dir.

    With ``durable`` it writes an append-only file fsynced on every write, so an
    acknowledged message survives a restart; otherwise it keeps nothing on disk.
    """

    def __init__(self, directory: Path, *, durable: bool = False, port: int = 0) -> None:
        if not REDIS_SERVER.exists():
            pytest.skip(f"{REDIS_SERVER} is not installed (make test installs it)")
        self.directory = directory
        self.durable = durable
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        cmd = [
            str(REDIS_SERVER),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *persistence,
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # No event tells when it listens: poll, with a deadline.
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                log = self.directory / "redis.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                raise AssertionError(f"redis-server did not start on {self.port}: {text[-2000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """Kills the process (SIGKILL, by pid) and waits for it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"FLUSHALL\r\n")
            assert s.recv(64).startswith(b"+OK")


@contextlib.contextmanager
def redis_server_in(directory: Path, *, durable: bool = False) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory, durable=durable)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests using it flush it first."""
    with redis_server_in(tmp_path_factory.mktemp("redis")) as server:
        yield server
