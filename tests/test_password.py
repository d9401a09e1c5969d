"""SetPassword: a user sets or changes their own password, proving the current one."""

from __future__ import annotations

import grpc
import pytest

from chatrpc.client import channel, login, set_password

from .conftest import running_server, target


async def _status(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code(), refused.value.details() or ""


async def test_a_user_sets_then_changes_their_password_and_logs_in_with_it(store_url) -> None:
    async with running_server(store_url) as srv:
        ch = channel(target(srv))
        try:
            token = (await login(ch, "alice")).token
            first = await set_password(ch, token, "", "pw-1")
            assert (first.had_password, first.changed) == (False, True)
            # Now the name needs the password (or a token) from anywhere.
            code, _ = await _status(login(ch, "alice"))
            assert code == grpc.StatusCode.ALREADY_EXISTS
            assert (await login(ch, "alice", password="pw-1")).user == "alice"
            same = await set_password(ch, token, "pw-1", "pw-1")
            assert (same.had_password, same.changed) == (True, False)
            second = await set_password(ch, token, "pw-1", "pw-2")
            assert (second.had_password, second.changed) == (True, True)
            code, _ = await _status(login(ch, "alice", password="pw-1"))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert (await login(ch, "alice", password="pw-2")).user == "alice"
            assert (await login(ch, "alice", token=token)).user == "alice", "tokens stay valid"
        finally:
            await ch.close()


async def test_set_password_refuses_a_wrong_current_password_an_empty_one_and_no_token() -> None:
    async with running_server() as srv:
        ch = channel(target(srv))
        try:
            token = (await login(ch, "alice", password="old")).token
            code, details = await _status(set_password(ch, token, "guess", "new"))
            assert code == grpc.StatusCode.UNAUTHENTICATED and "wrong password" in details
            code, details = await _status(set_password(ch, token, "old", ""))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "empty" in details
            code, _ = await _status(set_password(ch, "not-a-token", "old", "new"))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert (await login(ch, "alice", password="old")).user == "alice", "unchanged"
        finally:
            await ch.close()


async def test_a_wrong_current_password_counts_as_a_failed_attempt() -> None:
    # A burst of 5: a Login (1) and one failure (10) leave the address in debt.
    async with running_server(login_rate=0.01, login_burst=5) as srv:
        ch = channel(target(srv))
        try:
            token = (await login(ch, "alice", password="old")).token
            code, _ = await _status(set_password(ch, token, "guess", "new"))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            code, details = await _status(set_password(ch, token, "old", "new"))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        finally:
            await ch.close()
