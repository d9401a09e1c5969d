"""The browser client's rooms and moderation in a real browser (Debian's Chromium,
driven by Playwright) against a real server: the topic and the private label, room
events as notices, the member list's moderation tools and their refusals, kicks that
take the room off the page for good, invitations, blocking; on a phone too.
"""

# The fixtures come from test_browser (imported below); tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from .test_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    PHONE,
    browser,
    no_script_errors,
    open_page,
    say,
    shown,
    sign_in,
    terminal,
    web_server,
)
from .test_browser_conversation import new_page
from .web_client import web_url

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
)


async def join(page: Page, room: str, shown: bool = True) -> None:
    """Joins `room` from the side list's form (and waits until it is shown)."""
    if not await page.locator("#join-room").is_visible():
        await page.get_by_role("button", name="Conversations").click()
    await page.get_by_label("Room to join").fill(room)
    await page.get_by_label("Room to join").press("Enter")
    if shown:
        await expect(page.locator("#title")).to_have_text(f"#{room}")


def member(page: Page, user: str) -> Any:
    """The group of one member in the member list (their name, role and actions)."""
    return page.locator("#member-list").get_by_role("group", name=user, exact=True)


def events(page: Page) -> Any:
    """The room events shown in the current conversation, as notice lines."""
    return page.locator("#messages li.room-event")


async def saved_rooms(page: Page, user: str) -> list[str]:
    data = await page.evaluate(f"localStorage.getItem('chatrpc:{user}')")
    rooms: list[str] = json.loads(data)["rooms"]
    return rooms


async def test_the_topic_shows_on_join_and_changes_live(browser, web_server):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    await join(alice, "ops")  # alice made it: its owner
    await join(bob, "ops")
    await expect(bob.locator("#topic")).to_be_hidden()

    await alice.get_by_text("Room settings").click()
    await alice.get_by_label("Topic", exact=True).fill("release on <b>friday</b>")
    await alice.get_by_role("button", name="Set topic").click()
    for page in (alice, bob):
        await expect(page.locator("#topic")).to_have_text("Topic: release on <b>friday</b>")
        await expect(events(page)).to_have_text(["alice set the topic: release on <b>friday</b>"])

    # A page opened later has it from Joined, and the event from History.
    await bob.reload()
    await expect(bob.locator("#title")).to_have_text("#ops")
    await expect(bob.locator("#topic")).to_have_text("Topic: release on <b>friday</b>")
    await expect(events(bob)).to_have_text(["alice set the topic: release on <b>friday</b>"])
    # A DM has no topic line.
    await bob.locator("#member-list").get_by_role("button", name="alice", exact=True).click()
    await expect(bob.locator("#title")).to_have_text("alice")
    await expect(bob.locator("#topic")).to_be_hidden()
    no_script_errors(alice, bob)


async def test_a_moderator_kicks_a_user_who_loses_the_room_for_good(browser, web_server):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    await join(alice, "ops")
    await join(bob, "ops")
    await expect(member(alice, "bob")).to_be_visible()

    await member(alice, "bob").get_by_role("button", name="Moderate").click()
    await alice.get_by_label("Reason for bob").fill("spam")
    await member(alice, "bob").get_by_role("button", name="Kick").click()

    await expect(events(alice)).to_have_text(["bob was kicked by alice: spam"])
    await expect(member(alice, "bob")).to_have_count(0)
    await expect(bob.locator("#messages li.problem")).to_have_text(
        ["You were kicked from #ops by alice: spam"]
    )
    await expect(bob.locator("#rooms").get_by_role("button", name="#ops")).to_have_count(0)
    await expect(bob.locator("#title")).to_have_text("#general")
    assert await saved_rooms(bob, "bob") == ["general"]

    # Not rejoined when the page comes back: the room is gone from it.
    await bob.reload()
    await expect(bob.locator("#status")).to_have_text("")
    await expect(bob.locator("#member-list")).to_contain_text("bob")  # #general joined
    await expect(bob.locator("#rooms button")).to_have_text(["#general"])
    await say(alice, "still here?")
    await expect(shown(alice)).to_have_text(["still here?"])
    await expect(member(alice, "bob")).to_have_count(0)
    no_script_errors(alice, bob)


async def test_a_private_room_invites_by_a_banner_and_join_accepts(browser, web_server):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    await join(alice, "secret")
    await expect(alice.locator("#room-private")).to_be_hidden()
    await alice.get_by_text("Room settings").click()
    await alice.get_by_label("Private (invite-only)").check()
    await expect(alice.locator("#room-private")).to_be_visible()
    await expect(events(alice)).to_have_text(["#secret is now private (invite-only), set by alice"])
    # Listed as private to its members.
    await say(alice, "/rooms")
    await expect(alice.locator("#messages li.notice").last).to_contain_text("#secret (private)")

    # Uninvited, bob learns nothing of it: the page says so and drops it.
    await join(bob, "secret", shown=False)
    await expect(bob.locator("#messages li.problem")).to_have_text(
        ["Cannot join #secret: no room named #secret"]
    )
    await expect(bob.locator("#rooms button")).to_have_text(["#general"])

    await alice.get_by_label("Invite a user").fill("bob")
    await alice.get_by_role("button", name="Invite", exact=True).click()
    await expect(events(alice).last).to_have_text("bob was invited by alice")
    banner = bob.get_by_role("region", name="Invitations")
    await expect(banner).to_contain_text("alice invited you to #secret")
    await bob.get_by_role("button", name="Join #secret").click()
    await expect(bob.locator("#title")).to_have_text("#secret")
    await expect(bob.locator("#room-private")).to_be_visible()
    await expect(banner).to_be_hidden()
    await expect(member(alice, "bob")).to_be_visible()

    # bob is a member: no settings, no moderation tools; he reads and writes.
    await expect(bob.locator("#room-settings")).to_be_hidden()
    await expect(bob.get_by_role("button", name="Moderate")).to_have_count(0)
    await say(bob, "hello")
    await expect(shown(alice)).to_have_text(["hello"])
    # Public again: the label goes, for both.
    await alice.get_by_label("Private (invite-only)").uncheck()
    for page in (alice, bob):
        await expect(events(page).last).to_have_text("#secret is now public, set by alice")
        await expect(page.locator("#room-private")).to_be_hidden()
    no_script_errors(alice, bob)


async def test_a_refused_action_is_shown_as_the_server_words_it(browser, web_server, terminal):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    await sign_in(alice, "alice")
    await join(alice, "ops")
    await alice.get_by_text("Room settings").click()
    await alice.get_by_label("Invite a user").fill("bad name!")
    await alice.get_by_role("button", name="Invite", exact=True).click()
    await expect(alice.locator("#room-problem")).to_contain_text("Refused:")
    # What is allowed is done, and the problem line clears.
    bob = await terminal.open("bob")
    await bob.join("ops")
    await expect(member(alice, "bob")).to_be_visible()
    await member(alice, "bob").get_by_role("button", name="Moderate").click()
    await member(alice, "bob").get_by_role("button", name="Make moderator").click()
    await expect(events(alice)).to_have_text(["bob is now a moderator (set by alice)"])
    await expect(member(alice, "bob").locator(".role")).to_have_text("moderator")
    await expect(alice.locator("#room-problem")).to_have_text("")
    no_script_errors(alice)


async def test_blocking_hides_a_users_messages_live_and_in_history(browser, web_server, terminal):
    url = web_url(web_server)
    _, bob = await open_page(browser, url)
    await sign_in(bob, "bob")
    carol = await terminal.open("carol")
    dave = await terminal.open("dave")
    await carol.join("general")
    await dave.join("general")
    await carol.send_and_ack("before the block", room="general")
    await expect(shown(bob)).to_have_text(["before the block"])

    await member(bob, "carol").get_by_role("button", name="Block").click()
    await expect(member(bob, "carol").get_by_role("button", name="Unblock")).to_be_visible()
    hidden = bob.locator("#messages li.hidden-message .text")
    await expect(hidden).to_have_text(["hidden message from a blocked user"])

    await carol.send_and_ack("after the block", room="general")
    await dave.wait_for(lambda ev: "after the block" in dave.texts())
    await dave.send_and_ack("marker", room="general")
    await expect(shown(bob)).to_have_text(["hidden message from a blocked user", "marker"])

    await bob.reload()
    await expect(bob.locator("#status")).to_have_text("")
    await expect(shown(bob)).to_have_text(
        ["hidden message from a blocked user", "hidden message from a blocked user", "marker"]
    )
    assert "after the block" not in await bob.locator("#messages").inner_text()

    # Unblocked: what comes next shows again.
    await member(bob, "carol").get_by_role("button", name="Unblock").click()
    await expect(member(bob, "carol").get_by_role("button", name="Block")).to_be_visible()
    await carol.send_and_ack("friends again", room="general")
    await expect(shown(bob).last).to_have_text("friends again")
    no_script_errors(bob)


async def test_on_a_phone_members_see_no_moderation_and_owners_moderate(browser, web_server):
    url = web_url(web_server)
    _, owner = await open_page(browser, url, **PHONE)
    _, pat = await open_page(browser, url, **PHONE)
    await sign_in(owner, "olga")
    await sign_in(pat, "pat")
    await join(owner, "ops")
    await join(pat, "ops")

    await pat.get_by_role("button", name="Members").click()
    await expect(member(pat, "olga")).to_be_visible()
    await expect(member(pat, "olga").locator(".role")).to_have_text("owner")
    await expect(member(pat, "olga").get_by_role("button", name="Block")).to_be_visible()
    await expect(pat.get_by_role("button", name="Moderate")).to_have_count(0)
    await expect(pat.locator("#room-settings")).to_be_hidden()

    await owner.get_by_role("button", name="Members").click()
    await expect(owner.locator("#room-settings")).to_be_visible()
    await member(owner, "pat").get_by_role("button", name="Moderate").click()
    await owner.get_by_label("Reason for pat").fill("cool off")
    await owner.get_by_label("Ban for").select_option("1 hour")
    await member(owner, "pat").get_by_role("button", name="Ban", exact=True).click()
    await expect(pat.locator("#messages li.problem")).to_have_text(
        ["You were banned from #ops by olga: cool off"]
    )
    await expect(pat.locator("#title")).to_have_text("#general")
    for page in (owner, pat):
        wide = await page.evaluate("document.documentElement.scrollWidth > innerWidth")
        assert not wide
    # Banned: joining again is refused, the page says so and does not keep asking.
    await join(pat, "ops", shown=False)
    await expect(pat.locator("#messages li.problem").last).to_have_text(
        re.compile(r"^Cannot join #ops: you are banned from #ops")
    )
    await expect(pat.locator("#title")).to_have_text("#general")
    assert await saved_rooms(pat, "pat") == ["general"]

    # Pat is not online there, so not in the list: the settings unban by name.
    await owner.get_by_text("Room settings").click()
    await owner.get_by_label("Unban a user").fill("pat")
    await owner.get_by_role("button", name="Unban", exact=True).click()
    await expect(events(owner).last).to_have_text("pat was unbanned by olga")
    await join(pat, "ops")
    await expect(events(pat).last).to_have_text("pat was unbanned by olga")
    await expect(member(owner, "pat")).to_be_visible()
    no_script_errors(owner, pat)


async def test_an_invitation_made_while_away_shows_when_the_page_opens(browser, web_server):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    bob_ctx, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    await bob.close()  # bob is away; his cookie stays in the context
    await join(alice, "den")
    await alice.get_by_text("Room settings").click()
    await alice.get_by_label("Private (invite-only)").check()
    await alice.get_by_label("Invite a user").fill("bob")
    await alice.get_by_label("Invite a user").press("Enter")
    await expect(events(alice).last).to_have_text("bob was invited by alice")

    bob = await new_page(bob_ctx, url)
    await expect(bob.locator("#me")).to_have_text("bob")
    banner = bob.get_by_role("region", name="Invitations")
    await expect(banner.get_by_role("alert")).to_have_text(["alice invited you to #denJoinDismiss"])
    await expect(banner.get_by_role("alert").locator("span")).to_have_text(
        "alice invited you to #den"
    )
    await bob.get_by_role("button", name="Dismiss the invitation to #den").click()
    await expect(banner).to_be_hidden()
    await expect(bob.locator("#rooms button")).to_have_text(["#general"])
    no_script_errors(alice, bob)
