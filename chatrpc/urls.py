"""Store URLs as they may be shown: never with their password."""

from __future__ import annotations

import urllib.parse


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (``redis://:s3cret@h`` -> ``redis://:***@h``).

    Store URLs reach logs, the server's ready line and error messages that
    clients see; a Redis password in them would go everywhere.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
