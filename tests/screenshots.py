"""Makes the README's screenshots (docs/web-*.png) and the app's PNG icons.

``make screenshots`` runs it: a real server in this process, two pages in
Debian's Chromium and a terminal user, chatting for the camera.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

from .conftest import Peers, running_server, target
from .test_browser import CHROMIUM, CHROMIUM_ARGS, PHONE, say, sign_in
from .web_client import web_url

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
STATIC = REPO / "chatrpc" / "web" / "static"


async def icons(page: Page) -> None:
    svg = (STATIC / "icon.svg").read_text()
    for size in (192, 512):
        await page.set_viewport_size({"width": size, "height": size})
        await page.set_content(
            f"<body style='margin:0'><div style='width:{size}px;height:{size}px'>{svg}</div>"
        )
        await page.locator("svg").evaluate(
            f"e => {{ e.setAttribute('width', {size}); e.setAttribute('height', {size}); }}"
        )
        await page.locator("svg").screenshot(path=STATIC / f"icon-{size}.png", omit_background=True)


async def main() -> None:
    async with running_server() as srv, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        url = web_url(srv)
        desktop = await (
            await browser.new_context(viewport={"width": 1100, "height": 640})
        ).new_page()
        phone = await (await browser.new_context(**PHONE)).new_page()
        dark = await (await browser.new_context(**PHONE, color_scheme="dark")).new_page()
        for page in (desktop, phone, dark):
            await page.goto(url)
        await sign_in(desktop, "alice")
        await sign_in(phone, "bob")
        terminal = Peers(target(srv))
        carol = await terminal.open("carol")
        await carol.join("general")
        await say(desktop, "morning all! the release notes are up")
        await carol.send_and_ack("thanks, reading them now", room="general")
        await say(phone, "on my phone: looks great")
        await say(desktop, "/me pours coffee")
        await carol.send_and_ack("psst: lunch at 12?", to_user="alice")
        await say(desktop, "/join dev")
        await say(desktop, "/switch general")
        await expect(desktop.locator("#dms")).to_contain_text("carol")
        await expect(phone.locator("#messages li.message")).to_have_count(4)
        await desktop.screenshot(path=DOCS / "web-desktop.png")
        await phone.screenshot(path=DOCS / "web-phone.png")
        await sign_in(dark, "dana")
        await expect(dark.locator("#messages li.message")).to_have_count(4)
        await dark.get_by_role("button", name="Conversations").click()
        await dark.screenshot(path=DOCS / "web-phone-dark.png")
        await icons(await browser.new_page())
        await terminal.close()
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
