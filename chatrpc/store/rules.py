"""Rules every store applies the same way, written once.

* A store that was closed refuses work with :class:`StoreUnavailable` ("the
  store is closed"): retryable, and nothing is acknowledged.
* The listener is the hub's: an exception in it is logged, never raised into
  the store, so the append that notified it still succeeds.
* Retention by age counts from the store's clock, not the sender's: a message
  sent more than the maximum age ago is dropped however late it arrives.
* A retried ``client_msg_id`` whose original retention dropped is still a
  duplicate: the answer is the retry itself under the original's seq.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..errors import StoreUnavailable
from ..model import Draft, StoredMessage, message_in
from .options import StoreOptions

log = logging.getLogger(__name__)


def store_closed() -> StoreUnavailable:
    """The error of every call made after :meth:`Store.close`."""
    return StoreUnavailable("the store is closed")


def notify(
    listener: Callable[[Sequence[StoredMessage]], None], messages: Sequence[StoredMessage]
) -> None:
    """Passes newly committed ``messages`` to ``listener``; its failure is logged."""
    if not messages:
        return
    try:
        listener(messages)
    except Exception:
        log.exception("store listener failed")


def retention_cutoff_ms(options: StoreOptions, now_ms: int) -> int:
    """Messages sent before this time (ms) are dropped; 0 if none are by age."""
    age = options.retention_max_age_s
    return now_ms - int(age * 1000) if age else 0


def dropped_original(conv: str, seq: int, draft: Draft) -> StoredMessage:
    """What a retry of a message retention dropped answers: stored once, under its seq."""
    msg = message_in(conv, seq, draft.sender, draft.text, draft.sent_at_ms, draft.client_msg_id)
    return replace(
        msg,
        kind=draft.kind,
        target_seq=draft.target_seq,
        reply_to=draft.reply_to,
        emoji=draft.emoji,
        remove=draft.remove,
    )
