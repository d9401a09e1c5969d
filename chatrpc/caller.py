"""Who makes a unary call, as every transport gives it to chatrpc.api."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a call: the bearer token presented (may be empty) and the client's address."""

    token: str
    address: str
