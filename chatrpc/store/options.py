"""The limits every store applies the same way (see chatrpc.settings)."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import check, setting


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Limits that every store applies the same way (see chatrpc.settings)."""

    idempotency_window_s: float = setting(
        24 * 3600.0,
        "--idempotency-window",
        "how long a client_msg_id is remembered",
        low=0,
        metavar="SECONDS",
    )
    retention_max_messages: int = setting(
        0,
        "--retention-max-messages",
        "keep at most N messages per conversation (0: all)",
        low=0,
        metavar="N",
    )
    retention_max_age_s: float = setting(
        0.0,
        "--retention-max-age",
        "drop messages older than this (0: never)",
        low=0,
        metavar="SECONDS",
    )
    #: A crashed server's users drop out this long after its last heartbeat.
    presence_ttl_s: float = setting(
        15.0,
        "--presence-ttl",
        "with a shared (Redis) store: a server's online users are forgotten this"
        " long after its last heartbeat",
        low=0.5,
        metavar="SECONDS",
    )

    def __post_init__(self) -> None:
        check(self)
