"""Name ownership: claims, tokens and password hashes.

A token is 32 random bytes (``secrets``); the store keeps only its SHA-256,
which is enough for a secret that long. Passwords are hashed with scrypt (a
memory-hard function) and a random salt, in a worker thread so the event loop
keeps serving while a hash is computed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from .errors import ChatError, Code, invalid
from .idle import LastSeen
from .model import normalize_name
from .ratelimit import Buckets, retry_hint
from .stats import Stats
from .store import Account, Store

#: scrypt cost: 2**14 x 8 x 1 takes 16 MiB and a few tens of ms per hash.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MAX_PASSWORD = 1024
#: What a failed proof (wrong password, unknown token) costs from its budgets,
#: against 1 for any Login from the address: guessing is ten times slower than logging in.
FAILURE_COST = 10.0
#: A name's budget of wrong passwords from all addresses together, in bursts of
#: one address's: a guesser spread over many addresses gets this much, not more.
NAME_BURST_FACTOR = 5


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) for a password."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


#: How new names are claimed: by anyone (``open``), with a registration token an
#: operator created (``token``), or not at all (``closed``). Existing accounts
#: log in the same way in every mode.
REGISTRATION_MODES = ("open", "token", "closed")


def new_registration_token() -> str:
    """A fresh registration token (the store keeps only its :func:`hash_token`)."""
    return "reg-" + secrets.token_urlsafe(24)


def _check_enabled(account: Account | None) -> None:
    """PERMISSION_DENIED for an account an operator disabled."""
    if account is not None and account.disabled:
        raise ChatError(Code.PERMISSION_DENIED, f"account disabled: {account.user!r}")


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: str
    token: str
    created: bool


@dataclass(frozen=True, slots=True)
class PasswordChange:
    user: str
    had_password: bool
    changed: bool


class Auth:
    """Claims names and checks tokens against the store.

    Guessing is throttled, never the holder of a valid credential. Budgets refill
    at ``login_rate`` a second up to ``login_burst`` (``login_rate`` 0 lifts them):

    * every Login takes 1 from its client address's budget (``client``, e.g. an
      IP), and is refused (RESOURCE_EXHAUSTED) when that is empty;
    * an unknown or revoked token, on any call, costs :data:`FAILURE_COST` from
      the address's bad-token budget; while that is in debt, unknown tokens from
      the address get RESOURCE_EXHAUSTED instead of UNAUTHENTICATED. A valid
      token always authenticates, whoever else shares the address;
    * a wrong password costs :data:`FAILURE_COST` from the budget of that name
      from that address, and from the name's budget from all addresses
      (:data:`NAME_BURST_FACTOR` bursts). While either is in debt, a password
      for that name is refused before it is looked at, so the refusal says
      nothing about whether the guess was right; other names, and tokens, from
      the same address are not affected.
    """

    def __init__(
        self,
        store: Store,
        *,
        login_rate: float = 2.0,
        login_burst: int = 50,
        registration: str = "open",
        stats: Stats | None = None,
        last_seen: LastSeen | None = None,
    ) -> None:
        if registration not in REGISTRATION_MODES:
            raise ValueError(f"registration must be one of {', '.join(REGISTRATION_MODES)}")
        self.store = store
        self.registration = registration
        self.stats = stats or Stats()
        self.last_seen = last_seen or LastSeen(0)
        self._attempts = Buckets(login_rate, login_burst)
        self._bad_tokens = Buckets(login_rate, login_burst)
        self._bad_passwords = Buckets(login_rate, login_burst)
        self._name_guesses = Buckets(login_rate, login_burst * NAME_BURST_FACTOR)

    def _token_failed(self, client: str) -> None:
        """Charges an unknown token to ``client``; RESOURCE_EXHAUSTED if it was in debt."""
        wait = self._bad_tokens.debt(client)
        self._bad_tokens.charge(client, FAILURE_COST)
        if wait:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"too many invalid tokens from this address: retry in {retry_hint(wait)}",
            )

    def _check_password_debt(self, client: str, user: str) -> None:
        wait = max(self._bad_passwords.debt(f"{client} {user}"), self._name_guesses.debt(user))
        if wait:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"too many wrong passwords for {user!r}: retry in {retry_hint(wait)}",
            )

    def _password_failed(self, client: str, user: str) -> None:
        self._bad_passwords.charge(f"{client} {user}", FAILURE_COST)
        self._name_guesses.charge(user, FAILURE_COST)

    async def login(
        self,
        raw_user: str,
        password: str = "",
        presented_token: str = "",
        *,
        client: str = "",
        registration_token: str = "",
    ) -> LoginResult:
        """Claims a free name, or proves a taken one; returns a new token.

        A taken name needs its password, or a valid token of that user in
        ``presented_token``. Without proof: ALREADY_EXISTS; with a wrong one:
        UNAUTHENTICATED. Too many attempts (see the class): RESOURCE_EXHAUSTED.
        A token minted here is never left valid by a revoke-all of the user that
        ran while this login was checked: it is minted atomically with its proof.
        A free name is claimed only as the registration mode allows (see
        :data:`REGISTRATION_MODES`): PERMISSION_DENIED otherwise.
        """
        wait = self._attempts.take(client, 1.0)
        if wait:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"too many logins from this address: retry in {retry_hint(wait)}",
            )
        try:
            result = await self._login(
                raw_user, password, presented_token, client, registration_token
            )
        except ChatError as exc:
            self.stats.logins[exc.code.name] += 1
            raise
        self.stats.logins["created" if result.created else "ok"] += 1
        self.last_seen.seen(result.user)
        return result

    async def _login(
        self,
        raw_user: str,
        password: str,
        presented_token: str,
        client: str,
        registration_token: str = "",
    ) -> LoginResult:
        user = normalize_name(raw_user, "user")
        if len(password) > MAX_PASSWORD:
            raise invalid(f"password is longer than {MAX_PASSWORD} characters")
        token = secrets.token_urlsafe(32)
        account = await self.store.get_account(user)
        _check_enabled(account)
        if account is None:
            await self._may_register(user, registration_token, client)
            pw_hash = await asyncio.to_thread(hash_password, password) if password else None
            if await self.store.create_account(user, pw_hash, hash_token(token)):
                return LoginResult(user, token, created=True)
            account = await self.store.get_account(user)
            if account is None:  # pragma: no cover - claimed and removed at once
                raise ChatError(Code.UNAVAILABLE, "the name changed hands; try again")
        if presented_token:
            # The proof is checked where the token is added, in one atomic step.
            proof = hash_token(presented_token)
            if await self.store.mint_token(user, hash_token(token), proof_hash=proof):
                return LoginResult(user, token, created=False)
            if password:  # the password may still prove the name: charge, do not refuse
                self._bad_tokens.charge(client, FAILURE_COST)
            else:
                self._token_failed(client)
                raise ChatError(Code.UNAUTHENTICATED, f"that token is not valid for {user!r}")
        if password:
            await self._password_login(user, password, token, client)
            return LoginResult(user, token, created=False)
        raise ChatError(
            Code.ALREADY_EXISTS,
            f"the name {user!r} is taken: log in with its password or token, or pick another",
        )

    async def _may_register(self, user: str, registration_token: str, client: str) -> None:
        """Lets a new name be claimed as the registration mode says, or raises.

        In ``token`` mode this spends one use of the registration token (a
        refused token counts as a failed attempt: it is a credential too).
        """
        if self.registration == "open":
            return
        if self.registration == "closed":
            raise ChatError(
                Code.PERMISSION_DENIED,
                f"no new names on this server: {user!r} is free, but registration is closed;"
                " ask its operator for an account",
            )
        if not registration_token:
            raise ChatError(
                Code.PERMISSION_DENIED,
                f"claiming the new name {user!r} needs a registration token from the"
                " server's operator (chatrpc-client --registration-token, or the"
                " registration_token field of Login)",
            )
        now_ms = int(time.time() * 1000)
        if not await self.store.use_registration_token(hash_token(registration_token), now_ms):
            self._token_failed(client)
            raise ChatError(
                Code.UNAUTHENTICATED,
                "that registration token is unknown, expired or used up: ask the operator"
                " for another",
            )

    async def _password_login(self, user: str, password: str, token: str, client: str) -> None:
        """Adds ``token`` for ``user`` if ``password`` is theirs (see :meth:`login`)."""
        self._check_password_debt(client, user)
        # Read before the (slow) check: a revoke-all during it bumps the
        # generation, and the mint below then refuses to add the token.
        generation = await self.store.token_generation(user)
        account = await self.store.get_account(user)
        if (
            account is None
            or account.password_hash is None
            or not await asyncio.to_thread(verify_password, password, account.password_hash)
        ):
            self._password_failed(client, user)
            raise ChatError(Code.UNAUTHENTICATED, f"wrong password for {user!r}")
        if not await self.store.mint_token(user, hash_token(token), generation=generation):
            raise ChatError(
                Code.UNAVAILABLE,
                f"every session of {user!r} was revoked while this login was checked: try again",
            )

    async def authenticate(self, token: str, *, client: str = "") -> str:
        """The user a bearer token belongs to, or UNAUTHENTICATED (PERMISSION_DENIED
        if an operator disabled the account).

        A valid token always authenticates. An unknown one is charged to
        ``client`` (RESOURCE_EXHAUSTED once its bad-token budget is in debt).
        """
        if not token:
            raise ChatError(
                Code.UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata"
            )
        account = await self.store.account_for_token(hash_token(token))
        if account is None:
            self._token_failed(client)
            raise ChatError(Code.UNAUTHENTICATED, "invalid or revoked token: log in again")
        _check_enabled(account)
        self.last_seen.seen(account.user)
        return account.user

    async def logout(
        self, token: str, *, all_sessions: bool = False, client: str = ""
    ) -> tuple[str, int]:
        """Revokes ``token``, or every token of its user: (the user, how many were revoked).

        Raises UNAUTHENTICATED if ``token`` is not valid.
        """
        user = await self.authenticate(token, client=client)
        if all_sessions:
            return user, await self.store.revoke_tokens(user)
        return user, int(await self.store.revoke_token(hash_token(token)))

    async def set_password(
        self, token: str, current: str, new: str, *, client: str = ""
    ) -> PasswordChange:
        """Sets or changes the password of the user of ``token``.

        An account with a password needs it in ``current``: a wrong one is
        UNAUTHENTICATED and counts as a failed attempt of ``client``, like a wrong
        Login password. An empty or overlong ``new`` is INVALID_ARGUMENT. The user's
        tokens stay valid.
        """
        user = await self.authenticate(token, client=client)
        if not new:
            raise invalid("the new password is empty")
        if len(new) > MAX_PASSWORD or len(current) > MAX_PASSWORD:
            raise invalid(f"password is longer than {MAX_PASSWORD} characters")
        self._check_password_debt(client, user)
        account = await self.store.get_account(user)
        if account is None:  # pragma: no cover - a token outlived its account
            raise ChatError(Code.UNAUTHENTICATED, "no such account: log in again")
        had = account.password_hash is not None
        if account.password_hash is not None:
            if not await asyncio.to_thread(verify_password, current, account.password_hash):
                self._password_failed(client, user)
                raise ChatError(Code.UNAUTHENTICATED, f"wrong password for {user!r}")
            if current == new:
                return PasswordChange(user, had_password=True, changed=False)
        pw_hash = await asyncio.to_thread(hash_password, new)
        if not await self.store.set_password(user, pw_hash):  # pragma: no cover - as above
            raise ChatError(Code.UNAUTHENTICATED, "no such account: log in again")
        return PasswordChange(user, had_password=had, changed=True)
