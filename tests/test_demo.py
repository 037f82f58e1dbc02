"""The demo in a real browser: headless Chromium against ``examples/demo.py`` under uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .browser import chromium, shot
from .helpers import free_port

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


def database_bytes(data: Path) -> bytes:
    """Every byte of the demo's database, its write-ahead log included."""
    return b"".join(path.read_bytes() for path in sorted(data.glob("sessions.db*")))


async def test_a_logged_in_browser_stays_logged_in_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        with demo(port, tmp_path) as base:
            await page.goto(base + "/")
            await page.fill("input[name=username]", "Ada")
            await page.click("text=Log in")
            await page.wait_for_selector("text=Hello, Ada")
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


async def test_a_device_signed_out_from_another_is_logged_out(tmp_path: Path) -> None:
    port = free_port()
    async with chromium() as browser:
        laptop = await browser.new_context(user_agent=LAPTOP)
        phone = await browser.new_context(user_agent=PHONE)
        with demo(port, tmp_path) as base:
            for context in (phone, laptop):
                page = await context.new_page()
                await page.goto(base + "/")
                await page.fill("input[name=username]", "Ada")
                await page.click("text=Log in")
                await page.wait_for_selector("text=Hello, Ada")
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
                page = await context.new_page()
                await page.goto(base + "/")
                await page.fill("input[name=username]", "Grace")
                await page.click("text=Log in")
                await page.wait_for_selector("text=Hello, Grace")
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
