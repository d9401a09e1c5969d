"""Keeping a room from pruning in a real browser (Debian's Chromium, driven by
Playwright) against a real server: the owner's toggle in the room settings, read
again from the server on a reload, the KEEP notices, and no toggle for a member."""

# The fixtures come from test_browser (imported below); tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

import pytest
from playwright.async_api import expect

from .test_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    browser,
    no_script_errors,
    open_page,
    say,
    sign_in,
    web_server,
)
from .test_browser_rooms import events, join
from .web_client import web_url

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
)


async def test_an_owner_keeps_a_room_from_the_settings_and_members_see_it(browser, web_server):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    await join(alice, "den")
    await join(bob, "den")
    await alice.get_by_text("Room settings").click()
    keep = alice.get_by_label("Keep even when empty")
    await expect(keep).not_to_be_checked()
    await keep.check()
    for page in (alice, bob):
        await expect(events(page)).to_have_text(["alice kept the room"])
    # bob is a member: no settings at all.
    await expect(bob.locator("#room-settings")).to_be_hidden()
    await say(alice, "/rooms")
    await expect(alice.locator("#messages li.notice").last).to_contain_text("#den (kept)")

    # After a reload the page asks the server, which says the room is kept.
    await alice.reload()
    await expect(alice.locator("#title")).to_have_text("#den")
    await alice.get_by_text("Room settings").click()
    keep = alice.get_by_label("Keep even when empty")
    await expect(keep).to_be_checked()
    await keep.uncheck()
    await expect(events(bob).last).to_have_text("alice let the room be pruned when empty")
    await expect(keep).not_to_be_checked()
    no_script_errors(alice, bob)
