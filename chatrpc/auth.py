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
from .model import normalize_name
from .ratelimit import Buckets, retry_hint
from .store import Store

#: scrypt cost: 2**14 x 8 x 1 takes 16 MiB and a few tens of ms per hash.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MAX_PASSWORD = 1024
#: What a failed proof (wrong password, unknown token) costs from its address's
#: login budget, against 1 for any Login: guessing is ten times slower than logging in.
FAILURE_COST = 10.0


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


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: str
    token: str
    created: bool


class Auth:
    """Claims names and checks tokens against the store.

    Guessing is throttled per client address (``client``, e.g. an IP): each
    Login takes a token from the address's bucket (``login_rate`` a second,
    ``login_burst`` at once; ``login_rate`` 0 lifts it) and each failed proof
    takes :data:`FAILURE_COST`, which can leave the bucket in debt. While it is
    in debt, every credential check from that address is refused before the
    credential is looked at (RESOURCE_EXHAUSTED), so the refusal says nothing
    about whether the guess was right.
    """

    def __init__(
        self,
        store: Store,
        *,
        login_rate: float = 2.0,
        login_burst: int = 50,
        registration: str = "open",
    ) -> None:
        if registration not in REGISTRATION_MODES:
            raise ValueError(f"registration must be one of {', '.join(REGISTRATION_MODES)}")
        self.store = store
        self.registration = registration
        self._attempts = Buckets(login_rate, login_burst)

    def _check_debt(self, client: str) -> None:
        wait = self._attempts.debt(client)
        if wait:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"too many failed attempts from this address: retry in {retry_hint(wait)}",
            )

    def _failed(self, client: str) -> None:
        self._attempts.charge(client, FAILURE_COST)

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
        UNAUTHENTICATED. Too many attempts from ``client``: RESOURCE_EXHAUSTED.
        A free name is claimed only as the registration mode allows (see
        :data:`REGISTRATION_MODES`): PERMISSION_DENIED otherwise.
        """
        self._check_debt(client)
        wait = self._attempts.take(client, 1.0)
        if wait:
            raise ChatError(
                Code.RESOURCE_EXHAUSTED,
                f"too many logins from this address: retry in {retry_hint(wait)}",
            )
        try:
            return await self._login(raw_user, password, presented_token, registration_token)
        except ChatError as exc:
            if exc.code is Code.UNAUTHENTICATED:
                self._failed(client)
            raise

    async def _login(
        self, raw_user: str, password: str, presented_token: str, registration_token: str = ""
    ) -> LoginResult:
        user = normalize_name(raw_user, "user")
        if len(password) > MAX_PASSWORD:
            raise invalid(f"password is longer than {MAX_PASSWORD} characters")
        token = secrets.token_urlsafe(32)
        account = await self.store.get_account(user)
        if account is None:
            await self._may_register(user, registration_token)
            pw_hash = await asyncio.to_thread(hash_password, password) if password else None
            if await self.store.create_account(user, pw_hash, hash_token(token)):
                return LoginResult(user, token, created=True)
            account = await self.store.get_account(user)
            if account is None:  # pragma: no cover - claimed and removed at once
                raise ChatError(Code.UNAVAILABLE, "the name changed hands; try again")
        if presented_token:
            if await self.store.user_for_token(hash_token(presented_token)) == user:
                await self.store.add_token(user, hash_token(token))
                return LoginResult(user, token, created=False)
            if not password:
                raise ChatError(Code.UNAUTHENTICATED, f"that token is not valid for {user!r}")
        if password:
            if account.password_hash is not None and await asyncio.to_thread(
                verify_password, password, account.password_hash
            ):
                await self.store.add_token(user, hash_token(token))
                return LoginResult(user, token, created=False)
            raise ChatError(Code.UNAUTHENTICATED, f"wrong password for {user!r}")
        raise ChatError(
            Code.ALREADY_EXISTS,
            f"the name {user!r} is taken: log in with its password or token, or pick another",
        )

    async def _may_register(self, user: str, registration_token: str) -> None:
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
            raise ChatError(
                Code.UNAUTHENTICATED,
                "that registration token is unknown, expired or used up: ask the operator"
                " for another",
            )

    async def authenticate(self, token: str, *, client: str = "") -> str:
        """The user a bearer token belongs to, or UNAUTHENTICATED.

        An unknown token counts as a failed attempt of ``client``.
        """
        if not token:
            raise ChatError(
                Code.UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata"
            )
        self._check_debt(client)
        user = await self.store.user_for_token(hash_token(token))
        if user is None:
            self._failed(client)
            raise ChatError(Code.UNAUTHENTICATED, "invalid or revoked token: log in again")
        return user

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
