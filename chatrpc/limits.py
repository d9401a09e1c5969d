"""The chat rules an operator can change: each declared once (see chatrpc.settings)."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import ConfigError, check, setting

#: What a join or a DM resume costs from the user's send budget: a tenth of a
#: send, so rejoining many rooms after a reconnect is free in practice, while a
#: loop of joins (each one writes to the store) is held to ten times the send rate.
JOIN_COST = 0.1


@dataclass(frozen=True, slots=True)
class Limits:
    """Chat rules an operator can change (server options; see chatrpc.settings)."""

    max_text_bytes: int = setting(
        4096, "--max-text-bytes", "largest message text in UTF-8 bytes", low=1, high=1 << 20
    )
    max_client_msg_id: int = setting(
        128, "--max-client-msg-id", "longest client_msg_id, in characters", low=1, high=1024
    )
    max_replay: int = setting(
        1000,
        "--max-replay",
        "resume gap always replayed in full, in messages",
        low=0,
        high=1_000_000,
    )
    max_history_page: int = setting(
        1000, "--max-history-page", "largest History page, in messages", low=1, high=100_000
    )
    default_history_page: int = setting(
        100,
        "--default-history-page",
        "History page size when the request gives none",
        low=1,
        high=100_000,
    )
    max_rooms_per_session: int = setting(
        100, "--rooms-per-session", "rooms one session may be in at once", low=1, metavar="N"
    )
    max_sessions_per_user: int = setting(
        20,
        "--sessions-per-user",
        "Chat sessions one user may have open at once, over all their devices",
        low=1,
        metavar="N",
    )
    max_sessions: int = setting(
        10_000, "--max-sessions", "Chat sessions open on the server at once", low=1, metavar="N"
    )
    max_opening: int = setting(
        0,
        "--max-opening",
        "Chat sessions being opened at once (from the call until the joins that came"
        " with it are answered); past it a new one is refused at once with UNAVAILABLE"
        " 'server busy ... retry in N s' (0, the default: no bound)",
        low=0,
        metavar="N",
    )
    rate_limit: float = setting(
        5.0,
        "--rate-limit",
        "sends per second per user, averaged; 0 lifts the limit",
        low=0,
        metavar="PER_SECOND",
    )
    rate_burst: int = setting(
        20,
        "--rate-burst",
        "sends a user may make at once before the rate applies",
        low=1,
        metavar="N",
    )
    #: Each announcement costs one event per member (quadratic in a join storm),
    #: and the names in a join would make a join storm quadratic too.
    presence_max_sessions: int = setting(
        500,
        "--presence-max-sessions",
        "rooms with more sessions here, or users on all servers, stop announcing"
        " joins and leaves, and their joins name nobody, only the number online"
        " (0: always announce and name)",
        low=0,
        metavar="N",
    )
    #: A reconnect storm announces nothing to rooms whose members come back within it.
    presence_grace_s: float = setting(
        30.0,
        "--presence-grace",
        "a user whose connection dropped, or whose server stopped, stays online in"
        " their rooms this long, so coming back announces nothing; one who quits"
        " is gone at once (0: announce every drop)",
        low=0,
        high=3600,
        metavar="SECONDS",
    )
    rooms_per_user_per_day: int = setting(
        20,
        "--rooms-per-user-per-day",
        "rooms one user may create over a rolling day; joining an existing room"
        " is free; 0 lifts the limit",
        low=0,
        metavar="N",
    )
    max_list_page: int = setting(
        500,
        "--list-page-max",
        "largest page of ListRooms, ListMembers and ListDirects",
        low=1,
        high=100_000,
        metavar="N",
    )
    #: The page when a request gives no size (at most max_list_page).
    default_list_page: int = 100

    def __post_init__(self) -> None:
        check(self)
        if self.default_history_page > self.max_history_page:
            raise ConfigError("--default-history-page must be at most --max-history-page")
