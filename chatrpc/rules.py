"""What a send must be before it is stored (the budget it spends, its text, its
id), and what creating a room may take (the daily room quota).

The hub calls these while it prepares a send or a join.
"""

from __future__ import annotations

from .errors import ChatError, Code, invalid
from .limits import Limits
from .listing import duration
from .ratelimit import Buckets, retry_hint
from .stats import Stats
from .store import Store
from .text import contain_bidi, has_visible, is_printable_ascii


class SendRules:
    """The send rules of one server's :class:`Limits`, with its users' send budgets."""

    def __init__(self, limits: Limits, stats: Stats | None = None) -> None:
        self.limits = limits
        self.stats = stats or Stats()
        self._budget = Buckets(limits.rate_limit, limits.rate_burst)

    def spend(self, user: str, cost: float) -> None:
        """Takes ``cost`` from the user's send budget, or raises RESOURCE_EXHAUSTED."""
        wait = self._budget.take(user, cost)
        if wait:
            self.stats.rate_limited += 1
            raise ChatError(Code.RESOURCE_EXHAUSTED, f"rate limit: retry in {retry_hint(wait)}")

    def text(self, text: str) -> str:
        """The text to store (bidi controls contained), or INVALID_ARGUMENT; see chatrpc.text."""
        if not has_visible(text):
            raise invalid("message text is empty (it holds no visible character)")
        text = contain_bidi(text)
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > self.limits.max_text_bytes:
            raise invalid(
                f"message text is {size} bytes; the limit is {self.limits.max_text_bytes}"
            )
        # C0 and C1 controls (but newline and tab) and DEL: terminal escapes, e.g.
        # ESC and the one-byte CSI \x9b, could rewrite what a reader's screen shows.
        if any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in text):
            raise invalid("message text holds control characters")
        return text

    def client_msg_id(self, client_msg_id: str) -> str:
        """The id as given, or INVALID_ARGUMENT: too long, or not printable ASCII."""
        if len(client_msg_id) > self.limits.max_client_msg_id:
            raise invalid(
                f"client_msg_id is longer than {self.limits.max_client_msg_id} characters"
            )
        if not is_printable_ascii(client_msg_id):
            raise invalid("client_msg_id must be printable ASCII ('!' to '~'), without spaces")
        return client_msg_id


async def claim_room(store: Store, limits: Limits, room: str, user: str) -> None:
    """Creates ``room`` within ``user``'s daily quota (counted in the store, so on
    every server sharing it), or marks it active; RESOURCE_EXHAUSTED past the quota."""
    quota = limits.rooms_per_user_per_day
    claim = await store.claim_room(room, user, per_day=quota)
    if claim.retry_after_s:
        raise ChatError(
            Code.RESOURCE_EXHAUSTED,
            f"you created {quota} rooms in the last 24 hours, the most allowed:"
            f" join an existing room (/rooms lists them), or create #{room}"
            f" in {duration(claim.retry_after_s)}",
        )


async def claim_membership(store: Store, limits: Limits, room: str, user: str) -> None:
    """:func:`claim_room`, then ``user``'s membership of it (a first join)."""
    await claim_room(store, limits, room, user)
    await store.add_member(room, user)
