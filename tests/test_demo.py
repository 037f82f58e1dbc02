"""The demo in a real browser: headless Chromium against ``examples/demo.py`` under uvicorn."""

from __future__ import annotations

import html
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from .browser import chromium, shot
from .helpers import free_port, served_in_thread

pytestmark = pytest.mark.anyio

DEMO = Path(__file__).parent.parent / "examples" / "demo.py"


@contextmanager
def demo(port: int, data: Path) -> Iterator[str]:
    """Run the demo as ``bash scripts/demo.sh`` does (on ``port``, keeping its data in
    ``data``), until the block ends; stop it by its pid."""
    env = {**os.environ, "DEMO_PORT": str(port), "DEMO_DATA_DIR": str(data)}
    env.pop("SESSION_SECRET_KEY", None)
    env.pop("SESSION_ENCRYPTION_KEYS", None)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and demo
        [sys.executable, str(DEMO)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/profile", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    assert process.stderr is not None
                    pytest.fail("the demo did not start: " + process.stderr.read().decode())
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()


async def log_in(page: Page, base: str, name: str = "Ada", *, remember: bool = False) -> None:
    """Log in as ``name`` from the home page's form (ticking "Keep me signed in" if asked)."""
    await page.goto(base + "/")
    await page.fill("input[name=username]", name)
    if remember:
        await page.check("input[name=remember]")
    await page.click("text=Log in")
    await page.wait_for_selector(f"text=Hello, {name}")


def database_bytes(data: Path) -> bytes:
    """Every byte of the demo's database, its write-ahead log included."""
    return b"".join(path.read_bytes() for path in sorted(data.glob("sessions.db*")))


async def test_a_logged_in_browser_stays_logged_in_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        with demo(port, tmp_path) as base:
            await log_in(page, base)
            await page.fill("input[name=item]", "tea")
            await page.click("text=Add to cart")
            await page.wait_for_selector("li:has-text('tea')")
            await page.screenshot(path=shot("demo-logged-in"), full_page=True)
        assert (tmp_path / "sessions.db").exists()
        assert oct((tmp_path / "secret-key").stat().st_mode & 0o777) == "0o600"
        assert oct((tmp_path / "encryption-key").stat().st_mode & 0o777) == "0o600"
        stored = database_bytes(tmp_path)
        assert b"Ada" in stored  # readable: the user a session is bound to
        assert b"tea" not in stored  # the cart is sealed at rest

        with demo(port, tmp_path) as base:  # the same data, a new process
            await page.goto(base + "/")
            await page.wait_for_selector("text=Hello, Ada")
            assert await page.locator("li").all_inner_texts() == ["tea"]
            await page.screenshot(path=shot("demo-after-restart"), full_page=True)
            await page.click("text=Log out")
            await page.wait_for_selector("text=You have been logged out.")
        await context.close()


@pytest.mark.parametrize("ticked", [False, True], ids=["unticked", "ticked"])
async def test_keep_me_signed_in_outlives_the_browser_and_an_unticked_log_in_does_not(
    tmp_path: Path, ticked: bool
) -> None:
    port = free_port()
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        with demo(port, tmp_path) as base:
            await log_in(page, base, remember=ticked)
            await page.fill("input[name=item]", "tea")
            await page.click("text=Add to cart")
            await page.wait_for_selector("li:has-text('tea')")
            await page.goto(base + "/devices")
            kept = page.locator("tr.current td[data-label='Stays signed in']")
            said = await kept.inner_text()
            await page.screenshot(path=shot(f"demo-devices-{'ticked' if ticked else 'unticked'}"))
            cookies = await context.cookies()
        await context.close()  # the browser closes: only cookies with an expiry outlive it
        session = next(cookie for cookie in cookies if cookie["name"] == "session")
        if ticked:
            assert "remembered until" in said
            assert session["expires"] == pytest.approx(time.time() + 30 * 86400, abs=120)
        else:
            assert said == "until the browser closes"
            assert session["expires"] == -1  # a browser-session cookie: no Max-Age
        outliving = [cookie for cookie in cookies if cookie["expires"] != -1]

        with demo(port, tmp_path) as base:  # and the demo restarts
            reopened = await browser.new_context()
            await reopened.add_cookies(outliving)  # type: ignore[arg-type]
            page = await reopened.new_page()
            await page.goto(base + "/")
            if ticked:
                await page.wait_for_selector("text=Hello, Ada")
                assert await page.locator("li").all_inner_texts() == ["tea"]
            else:
                await page.wait_for_selector("text=Welcome")
                assert await page.locator("text=Hello, Ada").count() == 0
            await page.screenshot(
                path=shot(f"demo-reopened-{'ticked' if ticked else 'unticked'}"), full_page=True
            )
            await reopened.close()


async def test_a_device_signed_out_from_another_is_logged_out(tmp_path: Path) -> None:
    port = free_port()
    async with chromium() as browser:
        laptop = await browser.new_context(user_agent=LAPTOP)
        phone = await browser.new_context(user_agent=PHONE)
        with demo(port, tmp_path) as base:
            for context in (phone, laptop):
                await log_in(await context.new_page(), base)
            phone_page, laptop_page = phone.pages[0], laptop.pages[0]

            await laptop_page.click("nav >> text=Your devices")
            rows = laptop_page.locator("tr[data-handle]")
            await rows.first.wait_for()
            assert await rows.count() == 2
            texts = await rows.all_inner_texts()
            assert "Chrome on Linux" in texts[0]
            assert "this device" in texts[0]
            assert "Safari on iPhone" in texts[1]
            assert "127.0.0.1" in texts[1]
            await laptop_page.screenshot(path=shot("demo-devices"), full_page=True)

            await rows.nth(1).locator("text=Sign out").click()
            await laptop_page.wait_for_selector("text=That device has been signed out.")
            assert await laptop_page.locator("tr[data-handle]").count() == 1
            await laptop_page.screenshot(path=shot("demo-devices-after"), full_page=True)

            await phone_page.reload()
            await phone_page.wait_for_selector("text=Welcome")  # signed out
            await laptop_page.goto(base + "/")
            await laptop_page.wait_for_selector("text=Hello, Ada")  # still signed in

            await laptop_page.click("nav >> text=Session")
            await laptop_page.wait_for_selector("text=This session")
            facts = await laptop_page.locator("dl.facts").inner_text()
            assert "Ada" in facts
            assert "SQLite" in facts
            assert "if left idle" in facts
            await laptop_page.screenshot(path=shot("demo-session"), full_page=True)
            styled = await laptop_page.evaluate(
                "getComputedStyle(document.querySelector('.card')).borderRadius"
            )
            assert styled == "12px"  # the stylesheet the app serves was applied
        await laptop.close()
        await phone.close()


async def test_sign_out_everywhere_else_leaves_only_this_browser(tmp_path: Path) -> None:
    port = free_port()
    async with chromium() as browser:
        contexts = [await browser.new_context() for _ in range(3)]
        with demo(port, tmp_path) as base:
            for context in contexts:
                await log_in(await context.new_page(), base, "Grace")
            mine = contexts[0].pages[0]
            await mine.goto(base + "/devices")
            await mine.click("text=Sign out everywhere else (2)")
            await mine.wait_for_selector("text=Signed out 2 other devices.")
            await mine.wait_for_selector("text=This is the only device signed in.")
            for context in contexts[1:]:
                await context.pages[0].reload()
                await context.pages[0].wait_for_selector("text=Welcome")
        for context in contexts:
            await context.close()


LAPTOP = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"
)


def another_site(target: str) -> Starlette:
    """Pages of another origin on loopback (another port: cross-origin, yet the same
    site, so a SameSite=Lax cookie still rides along) that try to post to ``target``."""

    async def auto_form(request: Request) -> HTMLResponse:
        token = request.query_params.get("token", "")
        field = f"<input type=hidden name=csrf_token value='{html.escape(token)}'>" * bool(token)
        return HTMLResponse(
            f"<form method=post action='{target}/cart'>{field}"
            "<input type=hidden name=item value='bought by another site'></form>"
            "<script>document.forms[0].submit()</script>"
        )

    async def blank(request: Request) -> HTMLResponse:
        return HTMLResponse("<p>another site</p>")

    return Starlette(routes=[Route("/form", auto_form), Route("/", blank)])


async def test_forms_and_scripts_of_the_demo_pass_and_another_site_s_are_refused(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        with demo(port, tmp_path) as base, served_in_thread(another_site(base)) as elsewhere:
            await page.goto(base + "/")
            await page.fill("input[name=username]", "Ada")
            await page.click("text=Log in")  # a form: its token goes with it
            await page.wait_for_selector("text=Logged in as Ada.")
            await page.fill("input[name=item]", "tea")
            await page.click("text=Add to cart")
            await page.wait_for_selector("li:has-text('tea')")
            # a script of the page, as HTMX or fetch sends it: the token in a header
            status = await page.evaluate(
                """async () => {
                    const token = document.querySelector('meta[name=csrf-token]').content;
                    const answer = await fetch('/cart', {
                        method: 'POST', body: new URLSearchParams({item: 'scone'}),
                        headers: {'X-CSRF-Token': token}});
                    const bare = await fetch('/cart', {
                        method: 'POST', body: new URLSearchParams({item: 'no token'})});
                    return [answer.status, bare.status];
                }"""
            )
            assert status == [200, 403]
            stolen = await page.get_attribute("input[name=csrf_token]", "value")
            assert stolen

            await page.goto(elsewhere + "/form")  # posts at once, without the token
            await page.wait_for_selector("text=Request refused")
            assert "another site" in await page.inner_text("body")
            await page.screenshot(path=shot("demo-csrf-refused"), full_page=True)
            await page.goto(f"{elsewhere}/form?token={stolen}")  # even with a stolen token
            await page.wait_for_selector("text=The request came from another site.")
            await page.goto(elsewhere + "/")
            kinds = await page.evaluate(
                """async (target) => {
                    const simple = await fetch(target + '/cart', {method: 'POST',
                        mode: 'no-cors', credentials: 'include',
                        body: new URLSearchParams({item: 'fetched by another site'})});
                    let preflighted = 'sent';
                    try {
                        await fetch(target + '/cart', {method: 'POST', credentials: 'include',
                            headers: {'X-CSRF-Token': 'guess'}});
                    } catch (error) { preflighted = 'blocked'; }
                    return [simple.type, preflighted];
                }""",
                base,
            )
            assert kinds == ["opaque", "blocked"]

            await page.goto(base + "/")
            assert await page.locator("ul.cart li").all_inner_texts() == ["tea", "scone"]
        await context.close()


PHONE_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


async def test_every_page_fits_a_phone_and_a_laptop(tmp_path: Path) -> None:
    async def fits(page: Page, name: str) -> None:
        wide, room = await page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        await page.screenshot(path=shot(name), full_page=True)
        assert wide <= room, f"{name}: {wide} px of content in a {room} px window"

    name = "Wilhelmina" * 4  # the longest name the form takes, in one word
    async with chromium() as browser:
        with demo(free_port(), tmp_path) as base:
            for label, width, agent in (("laptop", 1280, None), ("phone", 390, PHONE_AGENT)):
                context = await browser.new_context(
                    viewport={"width": width, "height": 844}, user_agent=agent
                )
                page = await context.new_page()
                await page.goto(base + "/devices")  # signed out: sent to the log-in form
                await page.wait_for_selector("text=Log in to see /devices.")
                await fits(page, f"demo-{label}-log-in")
                await page.fill("input[name=username]", name)
                await page.click("button:has-text('Log in')")
                await page.wait_for_selector("h1:has-text('Your devices')")  # and back
                await fits(page, f"demo-{label}-devices")
                await page.goto(base + "/")
                await page.fill("input[name=item]", "x" * 60)
                await page.click("text=Add to cart")
                await page.wait_for_selector("li:has-text('xxxx')")
                await fits(page, f"demo-{label}-shop")
                await page.goto(base + "/session")
                await page.wait_for_selector("text=This session")
                await fits(page, f"demo-{label}-session")
                await page.evaluate(  # a form without its token: the refusal page
                    """() => {
                        const form = document.createElement('form');
                        form.method = 'post';
                        form.action = '/cart';
                        document.body.append(form);
                        form.submit();
                    }"""
                )
                await page.wait_for_selector("text=Request refused")
                await fits(page, f"demo-{label}-refused")
                await context.close()
