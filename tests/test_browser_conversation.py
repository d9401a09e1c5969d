"""The browser client's conversation features in a real browser (Debian's Chromium,
driven by Playwright) against a real server: replies, edits (the Up key), deletes and
reactions from a message's menu, the typing line, unread and mention counts, read
markers, search; beside terminal users on gRPC.
"""

# The fixtures come from test_browser (imported below); tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb

from .conftest import Peer, Peers, running_server, target
from .test_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    MS,
    NOTIFICATIONS,
    PHONE,
    PageErrors,
    browser,
    no_script_errors,
    open_page,
    say,
    shown,
    sign_in,
    terminal,
    web_server,
)
from .web_client import web_url

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
)


async def new_page(ctx: BrowserContext, url: str) -> Page:
    """Another page in a browser context (its cookie and storage), at `url`."""
    page = await ctx.new_page()
    page.set_default_timeout(MS)
    page._chatrpc_errors = PageErrors(page)  # type: ignore[attr-defined]
    await page.goto(url)
    return page


def item(page: Page, seq: int) -> Any:
    return page.locator(f"#messages li.message[data-seq='{seq}']")


async def open_menu(page: Page, seq: int) -> None:
    """Opens the menu of message `seq` as a mouse user does: hover, then its ⋯ button."""
    await item(page, seq).hover()
    await item(page, seq).locator(".menu-button").click()
    await expect(page.get_by_role("menu")).to_be_visible()


async def change(peer: Peer, **fields: Any) -> pb.Message:
    """A terminal user's edit, delete or reaction, waited for until echoed."""
    kind, body = next(iter(fields.items()))
    cid = f"{peer.user}-{kind}-{len(peer.events)}"
    event = pb.ClientEvent()
    getattr(event, kind).CopyFrom(body)
    getattr(event, kind).client_msg_id = cid
    await peer.stream.write(event)
    await peer.wait_for(
        lambda ev: any(
            (e.WhichOneof("event") == "message" and e.message.client_msg_id == cid)
            or (e.WhichOneof("event") == "error" and e.error.client_msg_id == cid)
            for e in ev
        )
    )
    for e in peer.of("error"):
        if e.client_msg_id == cid:
            raise AssertionError(f"{kind} refused: {e}")
    return next(m for m in peer.messages() if m.client_msg_id == cid)


async def test_a_reply_from_the_menu_quotes_the_message_and_the_quote_leads_to_it(
    browser, web_server, terminal
):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    carol = await terminal.open("carol")
    await carol.join("general")
    await carol.send_and_ack("what time is the meeting?", room="general")
    for i in range(30):  # enough to scroll the question out of view
        await carol.send_and_ack(f"filler {i}", room="general")
    await expect(shown(alice)).to_have_count(31)

    await alice.locator("#scroller").evaluate("s => s.scrollTop = 0")
    await open_menu(alice, 1)
    await alice.get_by_role("menuitem", name="Reply").click()
    await expect(alice.locator("#compose-what")).to_have_text(
        "Replying to carol: what time is the meeting?"
    )
    await expect(alice.get_by_label("Message", exact=True)).to_be_focused()
    await alice.keyboard.type("at noon")
    await alice.keyboard.press("Enter")
    await expect(alice.locator("#compose-mode")).to_be_hidden()

    await carol.wait_for(lambda ev: "at noon" in carol.texts())
    assert [m.reply_to for m in carol.messages() if m.text == "at noon"] == [1]
    for page in (alice, bob):
        quote = item(page, 32).locator(".quote")
        await expect(quote).to_have_text("↪ carol: what time is the meeting?")
    # The quote leads to the message answered, out of view until then.
    await expect(item(bob, 1)).not_to_be_in_viewport()
    await item(bob, 32).locator(".quote").click()
    await expect(item(bob, 1)).to_be_in_viewport()
    await expect(item(bob, 1)).to_have_class("message flash")
    no_script_errors(alice, bob)


async def test_up_edits_the_last_message_escape_cancels_and_others_see_it_edited(
    browser, web_server, terminal
):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    carol = await terminal.open("carol")
    await carol.join("general")
    await say(alice, "helo wrld")
    await carol.send_and_ack("not yours to edit", room="general")
    await expect(shown(bob)).to_have_text(["helo wrld", "not yours to edit"])

    box = alice.get_by_label("Message", exact=True)
    await box.press("ArrowUp")
    await expect(box).to_have_value("helo wrld")
    await expect(alice.locator("#compose-mode")).to_be_visible()
    await box.press("Escape")
    await expect(box).to_have_value("")
    await expect(alice.locator("#compose-mode")).to_be_hidden()
    await box.press("ArrowUp")
    await box.fill("hello world")
    await box.press("Enter")

    for page in (alice, bob):
        await expect(shown(page)).to_have_text(["hello world", "not yours to edit"])
        await expect(item(page, 1).locator(".edited")).to_have_text("(edited)")
    await carol.wait_for(
        lambda ev: any(m.kind == pb.Message.EDIT and m.target_seq == 1 for m in carol.messages())
    )
    edit = next(m for m in carol.messages() if m.kind == pb.Message.EDIT)
    assert (edit.text, edit.sender) == ("hello world", "alice")
    # A refused edit (too long) is said, and the message stays as it was.
    await box.press("ArrowUp")
    await box.fill("x" * 5000)
    await box.press("Enter")
    refused = alice.locator("#messages li.problem", has_text="Not edited: ")
    await expect(refused).to_contain_text("message text is 5000 bytes")
    await expect(shown(alice)).to_have_text(["hello world", "not yours to edit"])
    # Only the author's messages offer Edit; another's has Reply and React only.
    await open_menu(alice, 2)
    await expect(alice.get_by_role("menuitem", name="Edit")).to_have_count(0)
    await expect(alice.get_by_role("menuitem", name="Reply")).to_be_visible()
    await alice.keyboard.press("Escape")
    await expect(alice.get_by_role("menu")).to_be_hidden()
    # A terminal user's edit shows in the pages too.
    await change(carol, edit=pb.Edit(room="general", seq=2, text="fixed by carol"))
    await expect(shown(bob)).to_have_text(["hello world", "fixed by carol"])
    no_script_errors(alice, bob)


async def test_a_delete_asks_first_and_leaves_message_deleted_everywhere(
    browser, web_server, terminal
):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    carol = await terminal.open("carol")
    await carol.join("general")
    await say(alice, "oops, wrong room")
    await say(alice, "stays")
    await expect(shown(bob)).to_have_text(["oops, wrong room", "stays"])

    await open_menu(alice, 1)
    await alice.get_by_role("menuitem", name="Delete").click()
    await expect(alice.get_by_text("Delete this message for everyone?")).to_be_visible()
    await alice.get_by_role("menuitem", name="Cancel").click()
    await expect(alice.get_by_role("menu")).to_be_hidden()
    await expect(shown(alice)).to_have_text(["oops, wrong room", "stays"])

    await open_menu(alice, 1)
    await alice.get_by_role("menuitem", name="Delete").click()
    await alice.get_by_role("menuitem", name="Delete for everyone").click()
    for page in (alice, bob):
        await expect(shown(page)).to_have_text(["message deleted", "stays"])
        await expect(item(page, 1).locator(".menu-button")).to_have_count(0)
    await carol.wait_for(
        lambda ev: any(m.kind == pb.Message.DELETE and m.target_seq == 1 for m in carol.messages())
    )
    # After a reload the page shows History's current state: still deleted.
    await bob.reload()
    await expect(shown(bob)).to_have_text(["message deleted", "stays"])
    no_script_errors(alice, bob)


async def test_reactions_from_the_picker_show_as_chips_that_toggle_your_own(
    browser, web_server, terminal
):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    carol = await terminal.open("carol")
    await carol.join("general")
    await carol.send_and_ack("ship it?", room="general")
    await expect(shown(alice)).to_have_text(["ship it?"])

    await open_menu(alice, 1)
    await alice.get_by_role("menuitem", name="React 👍").click()
    chip = item(bob, 1).locator(".chip")
    await expect(chip).to_have_text("👍 1")
    await expect(chip).to_have_attribute("aria-pressed", "false")
    await chip.click()  # bob adds his
    await expect(item(alice, 1).locator(".chip")).to_have_text("👍 2")
    await expect(item(alice, 1).locator(".chip")).to_have_attribute("aria-pressed", "true")
    await change(carol, react=pb.React(room="general", seq=1, emoji="🎉"))
    # Sorted by emoji, as History sorts them.
    await expect(item(bob, 1).locator(".chip")).to_have_text(["🎉 1", "👍 2"])
    # The picker knows alice's: picking it again takes it back.
    await open_menu(alice, 1)
    await expect(alice.get_by_role("menuitem", name="Take back 👍")).to_be_visible()
    await alice.keyboard.press("Escape")
    await item(alice, 1).locator(".chip").nth(1).click()  # alice takes hers back
    await expect(item(bob, 1).locator(".chip")).to_have_text(["🎉 1", "👍 1"])
    reactions = [
        (m.sender, m.emoji, m.remove) for m in carol.messages() if m.kind == pb.Message.REACTION
    ]
    assert reactions[:2] == [("alice", "👍", False), ("bob", "👍", False)]
    # A reload shows the same, from History.
    await alice.reload()
    await expect(item(alice, 1).locator(".chip")).to_have_text(["🎉 1", "👍 1"])
    await expect(item(alice, 1).locator(".chip").nth(1)).to_have_attribute("aria-pressed", "false")
    no_script_errors(alice, bob)


async def test_changes_made_while_the_page_was_closed_show_when_it_is_back(
    browser, web_server, terminal
):
    ctx, alice = await open_page(browser, web_url(web_server))
    await sign_in(alice, "alice")
    carol = await terminal.open("carol")
    await carol.join("general")
    for text in ("one", "two", "three"):
        await carol.send_and_ack(text, room="general")
    await expect(shown(alice)).to_have_text(["one", "two", "three"])
    await alice.close()
    await change(carol, edit=pb.Edit(room="general", seq=1, text="one, edited"))
    await change(carol, delete=pb.Delete(room="general", seq=2))
    await change(carol, react=pb.React(room="general", seq=3, emoji="👀"))
    await carol.send_and_ack("four", room="general")
    # The same browser again: it resumes #general from its cursor, and the replay
    # holds the changes as items of their own.
    alice = await new_page(ctx, web_url(web_server))
    await expect(shown(alice)).to_have_text(["one, edited", "message deleted", "three", "four"])
    await expect(item(alice, 3).locator(".chip")).to_have_text("👀 1")
    seqs = await alice.locator("#messages li.message[data-seq]").evaluate_all(
        "items => items.map(i => Number(i.dataset.seq))"
    )
    assert seqs == [1, 2, 3, 7]  # the changes took seqs 4-6 and show as no line of their own
    no_script_errors(alice)


async def test_the_typing_line_shows_who_types_and_clears(browser, web_server, terminal):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    sent: list[str] = []
    bob.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(str(frame))))
    await bob.reload()
    await expect(bob.locator("#status")).to_have_text("")
    carol = await terminal.open("carol")
    await carol.join("general")

    box = bob.get_by_label("Message", exact=True)
    await box.press_sequentially("hello every", delay=20)
    await expect(alice.locator("#typing")).to_have_text("bob is typing…")
    await carol.wait_for(lambda ev: any(t.user == "bob" for t in carol.of("typing")))
    # One notice for a burst of keys: the page throttles them.
    assert sum('"typing"' in f for f in sent) == 1
    await box.press_sequentially("one")
    await box.press("Enter")
    await expect(shown(alice)).to_have_text(["hello everyone"])
    await expect(alice.locator("#typing")).to_have_text("")  # the message ends it
    assert not await bob.locator("#typing").inner_text()  # nobody sees themselves
    # Without a new notice the line clears after ~6 s.
    await carol.stream.write(pb.ClientEvent(typing=pb.Typing(room="general")))
    await expect(alice.locator("#typing")).to_have_text("carol is typing…")
    await expect(alice.locator("#typing")).to_have_text("", timeout=MS)
    # In a DM too, shown in that conversation only.
    await say(bob, "/msg carol psst")
    await expect(bob.locator("#title")).to_have_text("carol")
    await carol.stream.write(pb.ClientEvent(typing=pb.Typing(to_user="bob")))
    await expect(bob.locator("#typing")).to_have_text("carol is typing…")
    no_script_errors(alice, bob)


async def test_unread_and_mention_counts_highlight_notify_and_clear_once_read(
    browser, web_server, terminal
):
    ctx = await browser.new_context()
    await ctx.add_init_script(NOTIFICATIONS)
    alice = await new_page(ctx, web_url(web_server))
    await sign_in(alice, "alice")
    await alice.get_by_role("button", name="Notify me of direct messages and mentions").click()
    await alice.locator("#join-room").fill("dev")
    await alice.locator("#join-room").press("Enter")
    await expect(alice.locator("#title")).to_have_text("#dev")
    carol = await terminal.open("carol")
    await carol.join("general")
    await carol.send_and_ack("morning all", room="general")
    await carol.send_and_ack("@alice can you look at this?", room="general")
    general = alice.locator("#rooms").get_by_role("button", name="#general")
    await expect(general.locator(".badge")).to_have_text(["2", "@1"])
    # Hidden tab: a mention notifies, a plain message does not.
    await alice.evaluate("window.__hidden = true")
    await carol.send_and_ack("plain", room="general")
    await carol.send_and_ack("also @alice", room="general")
    await expect(general.locator(".badge")).to_have_text(["4", "@2"])
    assert await alice.evaluate("window.__shown") == [["carol in #general", "also @alice"]]
    await alice.evaluate("window.__hidden = false")

    await general.click()
    await expect(shown(alice)).to_have_count(4)
    await expect(alice.locator("#messages li.message.mention")).to_have_count(2)
    await expect(general.locator(".badge")).to_have_count(0)
    # The read marker is stored: after a reload (in #dev) only what came since counts.
    await alice.locator("#rooms").get_by_role("button", name="#dev").click()
    await alice.reload()
    await expect(alice.locator("#status")).to_have_text("")
    await expect(alice.locator("#title")).to_have_text("#dev")
    await carol.send_and_ack("one more", room="general")
    await expect(general.locator(".badge")).to_have_text("1")
    # Away, then back: the counts come from ListRooms and the replay, counted once.
    await alice.close()
    await carol.send_and_ack("while away", room="general")
    await carol.send_and_ack("@alice while away", room="general")
    alice = await new_page(ctx, web_url(web_server))
    general = alice.locator("#rooms").get_by_role("button", name="#general")
    await expect(general.locator(".badge")).to_have_text(["3", "@1"])
    await carol.send_and_ack("live again", room="general")
    await expect(general.locator(".badge")).to_have_text(["4", "@1"])
    no_script_errors(alice)


async def test_a_dm_shows_seen_under_the_last_message_the_peer_read(browser, web_server):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    await say(alice, "/msg bob are you there?")
    await expect(alice.locator("#title")).to_have_text("bob")
    await say(alice, "hello?")
    await expect(alice.locator("#messages .seen")).to_have_count(0)
    dm = bob.locator("#dms").get_by_role("button", name="alice")
    await expect(dm.locator(".badge")).to_have_text("2")
    await dm.click()
    await expect(shown(bob)).to_have_text(["are you there?", "hello?"])
    await expect(item(alice, 2).locator(".seen")).to_have_text("Seen")
    await expect(alice.locator("#messages .seen")).to_have_count(1)
    no_script_errors(alice, bob)


@contextlib.asynccontextmanager
async def sqlite_server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    async with running_server(f"sqlite://{tmp_path / 'chat.db'}") as srv:
        yield srv


async def test_search_finds_a_message_and_opens_the_conversation_at_it(browser, tmp_path):
    async with sqlite_server(tmp_path) as srv:
        group = Peers(target(srv))
        try:
            _, alice = await open_page(browser, web_url(srv))
            await sign_in(alice, "alice")
            carol = await group.open("carol")
            await carol.join("general")
            await carol.send_and_ack("the deploy is on friday", room="general")
            for i in range(80):  # the message found is far above the page's first page
                await carol.send_and_ack(f"chatter {i}", room="general")
            await carol.send_and_ack("no deploy this week", to_user="alice")
            await expect(alice.locator("#dms")).to_contain_text("carol")
            await alice.reload()  # the page shows the newest page of #general only
            await expect(shown(alice)).to_have_count(50)
            assert await item(alice, 1).count() == 0

            await alice.get_by_role("button", name="Search").click()
            await alice.get_by_label("Words to find").fill("deploy")
            await alice.get_by_label("Where to search").select_option("all")
            await alice.get_by_label("Words to find").press("Enter")
            hits = alice.locator("#search-results .hit")
            await expect(hits).to_have_count(2)
            await expect(hits.locator(".hit-where")).to_have_text(["carol", "#general"])
            await expect(hits.nth(1).locator("mark")).to_have_text(["deploy"])
            await hits.nth(1).click()
            await expect(item(alice, 1)).to_be_in_viewport()
            await expect(item(alice, 1).locator(".text")).to_have_text("the deploy is on friday")
            # What was loaded runs from the message found to the newest, with no hole.
            seqs = await alice.locator("#messages li.message[data-seq]").evaluate_all(
                "items => items.map(i => Number(i.dataset.seq))"
            )
            assert seqs == list(range(1, 82))
            # In this conversation only: the DM's hit is left out.
            await alice.get_by_label("Where to search").select_option("here")
            await alice.get_by_role("button", name="Find").click()
            await expect(hits).to_have_count(1)
            await expect(hits.locator(".hit-where")).to_have_text("#general")
            no_script_errors(alice)
        finally:
            await group.close()


async def test_on_a_phone_a_tap_opens_the_menu_as_a_sheet_a_finger_can_use(
    browser, web_server, terminal
):
    _, phone = await open_page(browser, web_url(web_server), **PHONE)
    await sign_in(phone, "pat")
    carol = await terminal.open("carol")
    await carol.join("general")
    await carol.send_and_ack("tap me", room="general")
    await say(phone, "mine")
    await expect(shown(phone)).to_have_count(2)
    await item(phone, 1).locator(".text").tap()
    menu = phone.get_by_role("menu")
    await expect(menu).to_be_visible()
    box = await menu.bounding_box()
    assert box is not None and box["width"] == 390  # a sheet across the screen
    small = await phone.evaluate(
        """[...document.querySelectorAll('button, input')]
            .filter(e => e.offsetParent !== null)
            .map(e => [e.textContent.trim(), e.getBoundingClientRect().height])
            .filter(([, h]) => h < 44)"""
    )
    assert small == []
    await phone.get_by_role("menuitem", name="React 🎉").tap()
    await expect(item(phone, 1).locator(".chip")).to_have_text("🎉 1")
    await item(phone, 2).locator(".text").tap()
    await phone.get_by_role("menuitem", name="Edit").tap()
    box_input = phone.get_by_label("Message", exact=True)
    await expect(box_input).to_have_value("mine")
    await box_input.fill("mine, edited")
    await box_input.press("Enter")
    await expect(shown(phone)).to_have_text(["tap me", "mine, edited"])
    widths = await phone.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] == 390
    no_script_errors(phone)


async def test_a_message_deleted_from_another_session_ends_its_edit(browser, web_server):
    url = web_url(web_server)
    _, laptop = await open_page(browser, url)
    _, phone = await open_page(browser, url, **PHONE)
    await sign_in(laptop, "alice", "pw")
    await sign_in(phone, "alice", "pw")
    await say(laptop, "about to change")
    await expect(shown(phone)).to_have_text(["about to change"])
    box = laptop.get_by_label("Message", exact=True)
    await box.press("ArrowUp")
    await expect(box).to_have_value("about to change")
    await item(phone, 1).locator(".text").tap()
    await phone.get_by_role("menuitem", name="Delete").tap()
    await phone.get_by_role("menuitem", name="Delete for everyone").tap()
    await expect(shown(laptop)).to_have_text(["message deleted"])
    await expect(laptop.locator("#compose-mode")).to_be_hidden()
    await expect(box).to_have_value("")
    ended = laptop.locator("#messages li.problem", has_text="you were editing")
    await expect(ended).to_have_text("The message you were editing was deleted.")
    # Up finds nothing left to edit.
    await box.press("ArrowUp")
    await expect(laptop.locator("#compose-mode")).to_be_hidden()
    no_script_errors(laptop, phone)
