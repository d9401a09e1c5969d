"""Development certificates for TLS and mutual TLS, made with the ``openssl`` command.

``python -m chatrpc.certs DIR`` (or ``make certs``) writes into DIR:

* ``ca.pem``, ``ca.key``: a private certificate authority for development;
* ``server.pem``, ``server.key``: a server certificate for ``localhost``,
  ``127.0.0.1`` and ``::1``, signed by that CA;
* ``client.pem``, ``client.key``: a client certificate (``CN=chatrpc-client``)
  for mutual TLS, signed by the same CA.

Then::

    chatrpc-server --tls-cert DIR/server.pem --tls-key DIR/server.key [--tls-client-ca DIR/ca.pem]
    grpcurl -cacert DIR/ca.pem [-cert DIR/client.pem -key DIR/client.key] localhost:50051 list

These are for development and tests only: anyone holding ``ca.key`` can mint
certificates this CA vouches for. Keys are written with mode 0600.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = chatrpc
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True, slots=True)
class DevCerts:
    """Paths of the files :func:`make_dev_certs` wrote."""

    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


class CertError(Exception):
    """openssl is missing or failed."""


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise CertError("the openssl command is needed to make certificates; install it")
    done = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _serial() -> str:
    return "0x" + secrets.token_hex(16)


def make_dev_certs(directory: str | os.PathLike[str], *, days: int = 825) -> DevCerts:
    """Writes a dev CA, a server and a client certificate into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    config = d / "openssl.cnf"
    config.write_text(_CONFIG)
    try:
        _openssl(
            "req", "-x509", *_KEY, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", str(days), "-subj", "/CN=chatrpc development CA",
            "-config", config.name, "-extensions", "ca", "-set_serial", _serial(),
            cwd=d,
        )  # fmt: skip
        for name, cn in (("server", "localhost"), ("client", "chatrpc-client")):
            _openssl(
                "req", "-new", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}", "-config", config.name,
                cwd=d,
            )  # fmt: skip
            _openssl(
                "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", _serial(), "-days", str(days), "-out", f"{name}.pem",
                "-extfile", config.name, "-extensions", name,
                cwd=d,
            )  # fmt: skip
            (d / f"{name}.csr").unlink()
    finally:
        config.unlink(missing_ok=True)
    certs = DevCerts(
        d / "ca.pem",
        d / "ca.key",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
    )
    for key in (certs.ca_key, certs.server_key, certs.client_key):
        key.chmod(0o600)
    return certs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m chatrpc.certs",
        description="Make a development CA, a localhost server certificate and a client"
        " certificate (for mutual TLS) with openssl.",
    )
    p.add_argument("directory", help="where to write the PEM files (created if needed)")
    p.add_argument("--days", type=int, default=825, help="validity (default %(default)s)")
    args = p.parse_args(argv)
    try:
        certs = make_dev_certs(args.directory, days=args.days)
    except (CertError, OSError) as exc:
        print(f"chatrpc.certs: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {certs.ca}, {certs.server_cert}, {certs.client_cert} and their keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
