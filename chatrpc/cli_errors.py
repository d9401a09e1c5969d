"""What a failed connection means, in the words of what to do about it.

grpc reports transport problems in its own terms ("failed to connect to all
addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:50052: Socket closed"). The
terminal client shows the user what happened and what to try instead.
"""

from __future__ import annotations

import grpc


def transport_problem(details: str, *, tls: bool) -> str | None:
    """A one-line account of a transport failure, or ``None`` if ``details`` is not one.

    Args:
        details: the status details grpc gave.
        tls: whether the client connected with TLS.
    """
    low = details.lower()
    if "wrong_version_number" in low:
        return "the server does not speak TLS: leave out --tls, --tls-ca, --tls-cert"
    if "certificate_verify_failed" in low:
        return (
            "the server's certificate is not trusted: --tls-ca names the CA that signed it"
            " (e.g. certs/ca.pem)"
        )
    if "handshake failed" in low:
        return "the TLS handshake failed (is --tls-server-name the name in its certificate?)"
    if "hostname lookup" in low or "dns resolution failed" in low or "errors resolving" in low:
        return "no such host"
    if "connection refused" in low:
        return "connection refused"
    if "failed to connect to all addresses" in low and "socket closed" in low:
        # The server hung up before the first byte of HTTP/2: what a TLS server
        # does to a plaintext client, and a mutual TLS server to a client
        # without a certificate.
        if tls:
            return (
                "the server closed the connection: it wants a client certificate"
                " (--tls-cert PEM --tls-key PEM)"
            )
        return (
            "the server closed the connection: it expects TLS (add --tls-ca CA.pem,"
            " or --tls for a certificate from a public CA)"
        )
    if "stream removed" in low or "socket closed" in low or "connection reset" in low:
        return "connection lost"
    if "deadline exceeded" in low or "timed out" in low:
        return "no answer from the server"
    if "failed to connect" in low:
        return "cannot connect"
    return None


def rpc_failure(exc: grpc.aio.AioRpcError, *, tls: bool) -> str:
    """A one-line account of a failed call: a transport problem, else the server's words."""
    details = exc.details() or ""
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN):
        problem = transport_problem(details, tls=tls)
        if problem is not None:
            return problem
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer from the server"
    return details or exc.code().name


def reconnect_reason(detail: str, *, tls: bool) -> str:
    """Why the client is reconnecting, from the library's ``CODE: details``."""
    code, _, details = detail.partition(": ")
    problem = transport_problem(details, tls=tls) if code == "UNAVAILABLE" else None
    return problem or detail


class Fatal(Exception):
    """A one-line error for stderr and the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def describe_rpc_error(exc: grpc.aio.AioRpcError, server: str, *, tls: bool = False) -> str:
    """One line for a failed call to ``server``: what went wrong, and what to do."""
    details = exc.details() or ""
    problem = (
        transport_problem(details, tls=tls)
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN)
        else None
    )
    if problem is not None:
        return f"cannot reach {server}: {problem}"
    return f"{server}: {details or exc.code().name}"
