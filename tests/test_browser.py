"""The browser client in a real browser (Debian's Chromium, driven by Playwright)
against a real server, beside a terminal user on gRPC.

Chromium is launched from /usr/bin/chromium (``make test`` installs it with apt);
these tests skip only when it is missing. ``playwright install`` is never used.
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from chatrpc.admin.service import AdminService
from chatrpc.server import ChatServer
from chatrpc.v1 import admin_pb2 as apb

from .conftest import WAIT, Peers, running_server, start_server_process, target
from .web_client import web_url

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
)

#: Chromium's own connections (updates, sync, QUIC) are refused on a closed network;
#: these keep it quiet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "has_touch": True,
    "is_mobile": True,
}
DOCS = Path(__file__).resolve().parent.parent / "docs"
MS = int(WAIT * 1000)
expect.set_options(timeout=MS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def web_server() -> AsyncIterator[ChatServer]:
    async with running_server() as srv:
        yield srv


@pytest.fixture
async def terminal(web_server: ChatServer) -> AsyncIterator[Peers]:
    group = Peers(target(web_server))
    try:
        yield group
    finally:
        await group.close()


class PageErrors:
    """Script errors a page raised: a test fails on any."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))


async def open_page(browser: Browser, url: str, **context: Any) -> tuple[BrowserContext, Page]:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    page.set_default_timeout(MS)
    page._chatrpc_errors = PageErrors(page)  # type: ignore[attr-defined]
    await page.goto(url)
    return ctx, page


async def sign_in(page: Page, user: str, password: str = "") -> None:
    await page.get_by_label("User name").fill(user)
    if password:
        await page.get_by_label("Password").fill(password)
    await page.get_by_label("User name").press("Enter")
    await expect(page.locator("#me")).to_have_text(user)
    await expect(page.locator("#status")).to_have_text("")  # connected


async def say(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    await box.fill(text)
    await box.press("Enter")


def shown(page: Page) -> Any:
    """The texts of the current conversation's messages, in the order shown."""
    return page.locator("#messages li.message[data-seq] .text")


async def texts(page: Page) -> list[str]:
    return list(await shown(page).all_inner_texts())


def no_script_errors(*pages: Page) -> None:
    for page in pages:
        assert page._chatrpc_errors.errors == []  # type: ignore[attr-defined]


async def test_two_browsers_and_a_terminal_user_see_each_others_messages_once(
    browser, web_server, terminal
):
    url = web_url(web_server)
    _, alice = await open_page(browser, url)
    _, bob = await open_page(browser, url)
    await sign_in(alice, "alice")
    await sign_in(bob, "bob")
    carol = await terminal.open("carol")
    await carol.join("general")
    # Presence reaches the pages: carol shows in the member list.
    await expect(alice.locator("#member-list")).to_contain_text("carol")

    await say(alice, "from alice")
    await expect(shown(bob).filter(has_text="from alice")).to_have_count(1)
    await say(bob, "from bob")
    await carol.send_and_ack("from carol", room="general")
    expected = ["from alice", "from bob", "from carol"]
    for page in (alice, bob):
        await expect(shown(page)).to_have_count(3)
        assert await texts(page) == expected
    await carol.wait_for(lambda ev: len(carol.texts()) == 3)
    assert carol.texts() == expected

    # DMs: a /msg from a page, a reply from the terminal, one from a member's name.
    await say(alice, "/msg carol psst")
    await carol.wait_for(lambda ev: "psst" in carol.texts())
    await carol.send_and_ack("hi alice", to_user="alice")
    await expect(alice.locator("#title")).to_have_text("carol")
    await expect(shown(alice)).to_have_text(["psst", "hi alice"])
    await bob.locator("#member-list").get_by_role("button", name="alice").click()
    await expect(bob.locator("#title")).to_have_text("alice")
    await say(bob, "hello from bob")
    # alice is in the DM with carol: bob's DM shows as unread in her list.
    await expect(alice.locator("#dms").get_by_role("button", name="bob")).to_contain_text("1")
    await alice.locator("#dms").get_by_role("button", name="bob").click()
    await expect(shown(alice)).to_have_text(["hello from bob"])
    assert carol.texts().count("psst") == 1
    assert carol.texts().count("hello from bob") == 0  # nobody else reads a DM
    no_script_errors(alice, bob)


async def test_a_phone_sized_page_signs_in_and_chats_without_horizontal_scroll(
    browser, web_server, terminal
):
    _, phone = await open_page(browser, web_url(web_server), **PHONE)
    await sign_in(phone, "pat")
    carol = await terminal.open("carol")
    await carol.join("general")
    await carol.send_and_ack("a rather long line " * 12, room="general")
    await say(phone, "hello from a phone")
    await expect(shown(phone)).to_have_count(2)
    widths = await phone.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] == 390
    # Every control on screen is at least 44 px high: a finger can hit it.
    small = await phone.evaluate(
        """[...document.querySelectorAll('button, input')]
            .filter(e => e.offsetParent !== null)
            .map(e => [e.id || e.textContent.trim(), e.getBoundingClientRect().height])
            .filter(([, h]) => h < 44)"""
    )
    assert small == []
    # One pane at a time: the list is behind the back button.
    assert not await phone.locator("#sidebar").is_visible()
    await phone.get_by_role("button", name="Conversations").click()
    await expect(phone.locator("#sidebar")).to_be_visible()
    assert not await phone.locator("#conversation").is_visible()
    await phone.locator("#rooms").get_by_role("button", name="#general").click()
    await expect(phone.locator("#conversation")).to_be_visible()
    no_script_errors(phone)


async def test_markup_in_messages_is_shown_as_text_and_runs_nothing(browser, web_server, terminal):
    _, page = await open_page(browser, web_url(web_server))
    await sign_in(page, "alice")
    carol = await terminal.open("carol")
    await carol.join("general")
    attacks = [
        "<img src=x onerror=\"window.__pwned='img'\">",
        "<script>window.__pwned='script'</script>",
        "<svg onload=\"window.__pwned='svg'\"></svg>",
    ]
    for text in attacks:
        await carol.send_and_ack(text, room="general")
    await say(page, "<b onmouseover=\"window.__pwned='b'\">bold?</b>")
    await expect(shown(page)).to_have_count(4)
    assert await texts(page) == [*attacks, "<b onmouseover=\"window.__pwned='b'\">bold?</b>"]
    assert (
        await page.locator("#messages img, #messages script, #messages svg, #messages b").count()
        == 0
    )
    assert await page.evaluate("window.__pwned") is None
    no_script_errors(page)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_killed_server_loses_and_doubles_nothing_in_the_page(browser, tmp_path):
    """Messages sent while the page was away appear once, in order (a gap larger
    than the replay is filled from History); what was typed offline is sent once."""
    grpc_port, web_port = free_port(), free_port()
    # A replay holds 2 messages: the page fills the rest of its gap from History.
    args = ["--db", str(tmp_path / "chat.db"), "--port", str(grpc_port), "--max-replay", "2"]
    args += ["--web-port", str(web_port), "--log-level", "warning"]
    server = start_server_process(*args, log_dir=tmp_path)
    try:
        ctx, page = await open_page(browser, f"http://127.0.0.1:{web_port}/")
        await sign_in(page, "alice")
        group = Peers(server.address)
        carol = await group.open("carol")
        await carol.join("general")
        await carol.send_and_ack("before", room="general")
        await expect(shown(page)).to_have_text(["before"])
        await group.close()

        server.stop(signal.SIGKILL)
        await expect(page.locator("#status")).to_have_text("Reconnecting…")
        # The page stays offline until the terminal user has spoken on the new server.
        await ctx.set_offline(True)
        await say(page, "typed while down")
        await expect(page.locator("#messages li.pending")).to_have_count(1)
        server = start_server_process(*args, log_dir=tmp_path)
        tokens, group = group.tokens, Peers(server.address)
        group.tokens = tokens  # the accounts survived in the SQLite file
        carol = await group.open("carol")
        await carol.join("general")
        for i in range(4):
            await carol.send_and_ack(f"meanwhile {i}", room="general")
        await ctx.set_offline(False)  # the browser is online again: it retries at once

        expected = ["before", *(f"meanwhile {i}" for i in range(4)), "typed while down"]
        await expect(shown(page)).to_have_text(expected)
        await expect(page.locator("#messages li.pending")).to_have_count(0)
        await carol.wait_for(lambda ev: "typed while down" in carol.texts())
        seqs = await page.locator("#messages li.message[data-seq]").evaluate_all(
            "items => items.map(i => Number(i.dataset.seq))"
        )
        assert seqs == [1, 2, 3, 4, 5, 6]

        await page.reload()
        await expect(page.locator("#status")).to_have_text("")
        await expect(shown(page)).to_have_text(expected)
        await carol.send_and_ack("after reload", room="general")
        await expect(shown(page)).to_have_text([*expected, "after reload"])
        assert carol.texts().count("typed while down") == 1
        await group.close()
        no_script_errors(page)
    finally:
        server.stop(signal.SIGKILL)


async def test_sign_in_explains_a_taken_name_and_a_wrong_password(browser, web_server, terminal):
    await terminal.token("taken")
    _, page = await open_page(browser, web_url(web_server))
    await page.get_by_label("User name").fill("taken")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#signin-problem")).to_contain_text("That name is taken")
    _, other = await open_page(browser, web_url(web_server))
    await sign_in(other, "secretive", "pw")
    await other.get_by_role("button", name="Sign out").click()
    await expect(other.get_by_label("User name")).to_be_visible()
    await other.get_by_label("User name").fill("secretive")
    await other.get_by_label("Password").fill("wrong")
    await other.get_by_label("Password").press("Enter")
    await expect(other.locator("#signin-problem")).to_have_text("Wrong password for that name.")
    await other.get_by_label("Password").fill("pw")
    await other.get_by_label("Password").press("Enter")
    await expect(other.locator("#me")).to_have_text("secretive")
    no_script_errors(page, other)


async def test_a_disabled_account_is_sent_back_to_sign_in_and_told_why(browser, web_server):
    _, page = await open_page(browser, web_url(web_server))
    await sign_in(page, "mallory", "pw")
    admin = AdminService(web_server.hub, "memory://")
    await admin.DisableUser(apb.DisableUserRequest(user="mallory"))
    # The socket closes with PERMISSION_DENIED: no retry loop, the sign-in form says why.
    await expect(page.get_by_label("User name")).to_be_visible()
    await expect(page.locator("#signin-problem")).to_contain_text("account disabled")
    await page.get_by_label("User name").fill("mallory")
    await page.get_by_label("Password").fill("pw")
    await page.get_by_label("Password").press("Enter")
    await expect(page.locator("#signin-problem")).to_contain_text("disabled")
    await admin.EnableUser(apb.EnableUserRequest(user="mallory"))
    await page.get_by_label("Password").press("Enter")
    await expect(page.locator("#me")).to_have_text("mallory")
    no_script_errors(page)


async def test_the_page_cannot_read_the_token(browser, web_server):
    _, page = await open_page(browser, web_url(web_server))
    await sign_in(page, "alice")
    assert await page.evaluate("document.cookie") == ""
    stored = await page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    cookies = await page.context.cookies()
    token = next(c["value"] for c in cookies if c["name"] == "chatrpc_token")
    assert token and token not in stored
    assert next(c for c in cookies if c["name"] == "chatrpc_token")["httpOnly"] is True
    assert json.loads(stored)


#: Records the notifications the page shows (Chromium headless has no desktop to show
#: them on) and reports the tab hidden, as when the user is in another tab.
NOTIFICATIONS = """
window.__shown = [];
window.__asked = 0;
class RecordedNotification {
  static permission = "default";
  static async requestPermission() {
    window.__asked += 1;
    RecordedNotification.permission = "granted";
    return "granted";
  }
  constructor(title, options) { window.__shown.push([title, options.body]); }
}
window.Notification = RecordedNotification;
Object.defineProperty(document, "hidden", { get: () => window.__hidden === true });
"""


async def test_dms_notify_while_the_tab_is_hidden_once_asked_on_a_click(
    browser, web_server, terminal
):
    ctx = await browser.new_context()
    await ctx.add_init_script(NOTIFICATIONS)
    page = await ctx.new_page()
    page.set_default_timeout(MS)
    await page.goto(web_url(web_server))
    await sign_in(page, "alice")
    carol = await terminal.open("carol")
    await carol.join("general")
    await carol.send_and_ack("before asking", to_user="alice")
    await expect(page.locator("#dms")).to_contain_text("carol")
    assert await page.evaluate("window.__asked") == 0  # never asked unprompted
    await page.get_by_role("button", name="Notify me of direct messages").click()
    await expect(page.get_by_role("button", name="Notify me of direct messages")).to_be_hidden()
    assert await page.evaluate("window.__asked") == 1
    await page.evaluate("window.__hidden = true")
    await carol.send_and_ack("in the room", room="general")
    await carol.send_and_ack("psst", to_user="alice")
    await expect(page.locator("#dms").get_by_role("button", name="carol")).to_contain_text("2")
    assert await page.evaluate("window.__shown") == [["carol", "psst"]]


async def test_every_control_has_a_name_and_the_keyboard_alone_chats(browser, web_server):
    _, page = await open_page(browser, web_url(web_server))
    await expect(page.get_by_label("User name")).to_be_focused()
    await page.keyboard.type("kim")
    await page.keyboard.press("Enter")
    await expect(page.locator("#me")).to_have_text("kim")
    unnamed = await page.evaluate(
        """[...document.querySelectorAll('input, button')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !e.textContent.trim())
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []
    await expect(page.get_by_label("Message", exact=True)).to_be_focused()
    await page.keyboard.type("typed with keys")
    await page.keyboard.press("Enter")
    await expect(shown(page)).to_have_text(["typed with keys"])
    # The new message is in a polite live region: screen readers announce it.
    assert await page.locator("#messages").get_attribute("aria-live") == "polite"
    assert await page.locator("#messages").get_attribute("role") == "log"
    # Tab reaches the room list; Enter opens a conversation from it.
    await page.locator("#join-room").focus()
    await page.keyboard.type("dev")
    await page.keyboard.press("Enter")
    await expect(page.locator("#title")).to_have_text("#dev")
    await page.locator("#rooms button").first.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#title")).to_have_text("#general")
    no_script_errors(page)
