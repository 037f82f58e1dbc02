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

        with demo(port, tmp_path) as base:  # the same data, a new process
            await page.goto(base + "/")
            await page.wait_for_selector("text=Hello, Ada")
            assert await page.locator("li").all_inner_texts() == ["tea"]
            await page.screenshot(path=shot("demo-after-restart"), full_page=True)
            await page.click("text=Log out")
            await page.wait_for_selector("text=You have been logged out.")
        await context.close()
