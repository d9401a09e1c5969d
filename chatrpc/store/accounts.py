"""The accounts role: accounts, login tokens, passwords and registration tokens.

* **Accounts.** Name claims are first-come: :meth:`AccountStore.create_account`
  is atomic. Only hashes of tokens and passwords are stored.
* **Revocation wins.** :meth:`AccountStore.revoke_tokens` leaves no token of
  the user valid, even one minted concurrently: :meth:`AccountStore.mint_token`
  checks its proof (a token still valid, or the user's token generation
  unchanged since a password was checked) and adds the new token in one atomic
  step, and ``revoke_tokens`` bumps the generation in the same step that
  deletes the tokens.
* **Registration tokens.** Stored by hash, with a number of uses and an
  expiry; :meth:`AccountStore.use_registration_token` spends one use atomically.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    password_hash: str | None
    #: An operator disabled it: its Logins and tokens are refused (see admin.py).
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class RegistrationToken:
    """A registration token as listed (never the token itself)."""

    #: The first 12 hex digits of the token's hash: how an operator names it.
    id: str
    uses_left: int
    expires_ms: int
    created_ms: int


def token_id(token_hash: str) -> str:
    """How a registration token is named in listings: a prefix of its hash."""
    return token_hash[:12]


class AccountStore(abc.ABC):
    """Who may use which name; see the module docstring."""

    @abc.abstractmethod
    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        """Claims ``user`` with a first token; False (and no change) if already taken."""

    @abc.abstractmethod
    async def get_account(self, user: str) -> Account | None:
        """The account of ``user``, or None if the name is free."""

    @abc.abstractmethod
    async def add_token(self, user: str, token_hash: str) -> None:
        """Adds a valid token for an existing account."""

    @abc.abstractmethod
    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        """Adds a token for ``user`` only if its proof still holds; False (no change) if not.

        The proof is ``proof_hash``, a token that must still belong to ``user``,
        and/or ``generation``, which must still be the user's
        :meth:`token_generation` (read before a password was checked). The check
        and the write are one atomic step against :meth:`revoke_tokens`, on every
        server sharing the store, so a token minted during a revoke-all is
        either revoked by it or never minted. False also if the account is gone.
        """

    @abc.abstractmethod
    async def token_generation(self, user: str) -> int:
        """How many times every token of ``user`` was revoked (0 for a new or free name)."""

    @abc.abstractmethod
    async def user_for_token(self, token_hash: str) -> str | None:
        """The user a token belongs to, or None."""

    async def account_for_token(self, token_hash: str) -> Account | None:
        """The account a token belongs to (disabled or not), or None: what
        authenticating a call needs, in one step where the store can."""
        user = await self.user_for_token(token_hash)
        return None if user is None else await self.get_account(user)

    @abc.abstractmethod
    async def revoke_tokens(self, user: str) -> int:
        """Invalidates every token of ``user`` and bumps its :meth:`token_generation`
        (an existing account's); returns how many tokens there were."""

    @abc.abstractmethod
    async def revoke_token(self, token_hash: str) -> bool:
        """Invalidates one token; False if it was not valid."""

    @abc.abstractmethod
    async def set_password(self, user: str, password_hash: str) -> bool:
        """Replaces the password hash of an existing account; False if there is none."""

    @abc.abstractmethod
    async def create_registration_token(
        self, token_hash: str, *, uses: int, expires_ms: int
    ) -> None:
        """Stores a registration token good for ``uses`` new names until ``expires_ms``."""

    @abc.abstractmethod
    async def use_registration_token(self, token_hash: str, now_ms: int) -> bool:
        """Spends one use of a token; False (and no change) if it is unknown,
        expired or used up."""

    @abc.abstractmethod
    async def list_registration_tokens(self) -> list[RegistrationToken]:
        """Every stored registration token (expired ones too, until removed), by id."""

    @abc.abstractmethod
    async def revoke_registration_token(self, token_id: str) -> bool:
        """Removes the token with that id (see :func:`token_id`); False if none."""
