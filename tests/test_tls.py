"""TLS and mutual TLS: the right clients connect, every other one is refused."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from chatrpc.certs import DevCerts, make_dev_certs
from chatrpc.client import ChannelSecurity, ChatStream, channel, login
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb

from .conftest import BIN, WAIT, make_config, start_server_process

GRPCURL = BIN / "grpcurl"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """A dev CA with a localhost server certificate and a client certificate (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory, certs: DevCerts) -> DevCerts:
    """The same files from a CA the server does not know."""
    return make_dev_certs(tmp_path_factory.mktemp("other-certs"))


async def _tls_server(certs: DevCerts, *, mutual: bool = False) -> ChatServer:
    srv = ChatServer(
        make_config(
            "memory://",
            tls_cert=str(certs.server_cert),
            tls_key=str(certs.server_key),
            tls_client_ca=str(certs.ca) if mutual else "",
        )
    )
    await srv.start()
    return srv


@pytest.fixture
async def tls_server(certs: DevCerts) -> AsyncIterator[ChatServer]:
    srv = await _tls_server(certs)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def mtls_server(certs: DevCerts) -> AsyncIterator[ChatServer]:
    srv = await _tls_server(certs, mutual=True)
    try:
        yield srv
    finally:
        await srv.stop()


async def _login_code(address: str, security: ChannelSecurity | None) -> grpc.StatusCode:
    """The status of a Login over a channel with ``security`` (OK if it worked)."""
    ch = channel(address, security=security)
    try:
        await login(ch, "alice", timeout=WAIT)
    except grpc.aio.AioRpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    finally:
        await ch.close()
    return grpc.StatusCode.OK


async def test_a_client_that_trusts_the_ca_chats_over_tls(
    tls_server: ChatServer, certs: DevCerts
) -> None:
    for host in ("127.0.0.1", "localhost"):
        ch = channel(f"{host}:{tls_server.port}", security=ChannelSecurity.from_files(certs.ca))
        try:
            token = (await login(ch, f"user-{host}")).token
            stream = ChatStream(ch, token)
            await stream.join("general")
            await stream.send("over tls", room="general", client_msg_id="t1")
            await stream.done_writing()
            kinds = [e.WhichOneof("event") async for e in stream]
            assert kinds == ["joined", "message"]
        finally:
            await ch.close()


async def test_clients_without_the_ca_are_refused(
    tls_server: ChatServer, certs: DevCerts, other_certs: DevCerts
) -> None:
    address = f"127.0.0.1:{tls_server.port}"
    # Plaintext to a TLS port, the system's roots, and another CA: all fail the handshake.
    for security in (None, ChannelSecurity(), ChannelSecurity.from_files(other_certs.ca)):
        assert await _login_code(address, security) == grpc.StatusCode.UNAVAILABLE, security
    # The right CA but the wrong name: the certificate is for localhost and 127.0.0.1.
    wrong_name = ChannelSecurity.from_files(certs.ca, server_name="chat.example.com")
    assert await _login_code(address, wrong_name) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_accepts_only_clients_with_a_certificate_from_its_ca(
    mtls_server: ChatServer, certs: DevCerts, other_certs: DevCerts
) -> None:
    address = f"127.0.0.1:{mtls_server.port}"
    no_cert = ChannelSecurity.from_files(certs.ca)
    foreign = ChannelSecurity.from_files(certs.ca, other_certs.client_cert, other_certs.client_key)
    for security in (None, no_cert, foreign):
        assert await _login_code(address, security) == grpc.StatusCode.UNAVAILABLE, security
    mine = ChannelSecurity.from_files(certs.ca, certs.client_cert, certs.client_key)
    assert await _login_code(address, mine) == grpc.StatusCode.OK


def _grpcurl(*args: str, max_time: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GRPCURL), "-max-time", str(max_time), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_grpcurl_with_cacert_talks_to_the_tls_server_process(
    certs: DevCerts, tmp_path: Path
) -> None:
    if not GRPCURL.exists():
        pytest.skip("grpcurl is not installed in the venv")
    sp = start_server_process(
        *("--store", "memory://", "--log-level", "warning"),
        *("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)),
        log_dir=tmp_path,
    )
    try:
        listed = _grpcurl("-cacert", str(certs.ca), sp.address, "list")
        assert listed.returncode == 0, listed.stderr
        assert "chatrpc.v1.ChatService" in listed.stdout.split()
        health = _grpcurl("-cacert", str(certs.ca), sp.address, "grpc.health.v1.Health/Check")
        assert health.returncode == 0 and "SERVING" in health.stdout, health.stderr
        # With the system's roots: refused at once. In plaintext the server waits
        # for a TLS hello that never comes, so grpcurl gives up at its deadline.
        refused = _grpcurl(sp.address, "list")
        assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr
        plaintext = _grpcurl("-plaintext", sp.address, "list", max_time=1)
        assert plaintext.returncode != 0, plaintext.stdout
    finally:
        assert sp.stop(signal.SIGTERM) == 0


def test_grpcurl_with_a_client_certificate_talks_to_the_mtls_server_process(
    certs: DevCerts, tmp_path: Path
) -> None:
    if not GRPCURL.exists():
        pytest.skip("grpcurl is not installed in the venv")
    sp = start_server_process(
        *("--store", "memory://", "--log-level", "warning"),
        *("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)),
        *("--tls-client-ca", str(certs.ca)),
        log_dir=tmp_path,
    )
    try:
        ca = ("-cacert", str(certs.ca))
        without = _grpcurl(*ca, sp.address, "list")
        assert without.returncode != 0
        with_cert = _grpcurl(
            *ca, "-cert", str(certs.client_cert), "-key", str(certs.client_key),
            *("-d", '{"user": "grpcurl"}'), sp.address, "chatrpc.v1.ChatService/Login",
        )  # fmt: skip
        assert with_cert.returncode == 0, with_cert.stderr
        assert '"token"' in with_cert.stdout
    finally:
        assert sp.stop(signal.SIGTERM) == 0


def test_the_server_refuses_to_start_with_an_unreadable_key(certs: DevCerts) -> None:
    done = subprocess.run(
        [
            *(str(BIN / "chatrpc-server"), "--port", "0", "--store", "memory://"),
            *("--tls-cert", str(certs.server_cert), "--tls-key", "/nonexistent/key.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot read the TLS key" in done.stderr and "Traceback" not in done.stderr


def test_make_certs_writes_private_keys_readable_only_by_their_owner(certs: DevCerts) -> None:
    for key in (certs.ca_key, certs.server_key, certs.client_key):
        assert key.stat().st_mode & 0o077 == 0, key
    assert pb.DESCRIPTOR.services_by_name["ChatService"].methods_by_name["Logout"]


def test_chatrpc_client_chats_over_tls_with_the_ca_and_is_refused_without_it(
    certs: DevCerts, tmp_path: Path, client_env: dict[str, str]
) -> None:
    sp = start_server_process(
        *("--store", "memory://", "--log-level", "warning"),
        *("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)),
        log_dir=tmp_path,
    )
    cli = [str(BIN / "chatrpc-client"), "--user", "alice", "--server", sp.address]
    try:
        ok = subprocess.run(
            [*cli, "--tls-ca", str(certs.ca)],
            input="over tls\n",
            capture_output=True,
            text=True,
            env=client_env,
            timeout=30,
        )
        assert ok.returncode == 0, ok.stderr
        assert "#general <alice> over tls" in ok.stdout
        # With the system's CAs the certificate is not trusted: one line, exit 1.
        refused = subprocess.run(
            [*cli, "--tls"],
            input="x\n",
            capture_output=True,
            text=True,
            env=client_env,
            timeout=30,
        )
        assert refused.returncode == 1
        assert (
            refused.stderr.startswith("chatrpc-client: ") and len(refused.stderr.splitlines()) == 1
        ), refused.stderr
        missing = subprocess.run(
            [*cli, "--tls-ca", str(tmp_path / "nope.pem")],
            capture_output=True,
            text=True,
            env=client_env,
            timeout=30,
        )
        assert missing.returncode == 2 and "cannot read" in missing.stderr
        assert "Traceback" not in refused.stderr + missing.stderr
    finally:
        assert sp.stop(signal.SIGTERM) == 0
