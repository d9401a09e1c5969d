"""TLS for the gRPC port: the server's credentials from the configured PEM files."""

from __future__ import annotations

import grpc

from .config import ServerConfig
from .errors import ChatError, Code


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ChatError(
            Code.INVALID_ARGUMENT, f"cannot read the {what} {path!r}: {exc.strerror}"
        ) from exc


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files, or None for plaintext."""
    if not (config.tls_cert or config.tls_key or config.tls_client_ca):
        return None
    if not (config.tls_cert and config.tls_key):
        raise ChatError(Code.INVALID_ARGUMENT, "TLS needs both a certificate and its key")
    pair = (_read_pem(config.tls_key, "TLS key"), _read_pem(config.tls_cert, "TLS certificate"))
    client_ca = (
        _read_pem(config.tls_client_ca, "client CA certificate") if config.tls_client_ca else None
    )
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
