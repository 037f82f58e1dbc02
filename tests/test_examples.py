"""Every app under examples/ runs, driven as its users would drive it."""

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from .helpers import free_port, uvicorn_server

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_demo(data: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The demo, keeping its data in ``data``, with keys of its own making."""
    monkeypatch.setenv("DEMO_DATA_DIR", str(data))
    monkeypatch.delenv("SESSION_SECRET_KEY", raising=False)
    return load("demo")


def client_for(module: ModuleType) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=module.app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_quickstart_works_exactly_as_written() -> None:
    quickstart = load("quickstart")
    async with quickstart.sessions.lifespan(quickstart.app), client_for(quickstart) as client:
        assert (await client.get("/me")).status_code == 401
        login = await client.post("/login")
        assert login.json() == {"ok": True}
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Max-Age=1800" in cookie
        assert (await client.get("/me")).json() == {"user_id": 1}
        assert (await client.post("/cart", params={"item": "book"})).json() == ["book"]
        assert (await client.post("/cart", params={"item": "pen"})).json() == ["book", "pen"]
        logout = await client.post("/logout")
        assert logout.json() == {"ok": True}
        assert "expires=Thu, 01 Jan 1970 00:00:00 GMT" in logout.headers["set-cookie"]
        assert (await client.get("/me")).status_code == 401
    assert len(quickstart.sessions.backend) == 0
    assert quickstart.logged_in.__name__ == "verify_session"


async def test_the_demo_shop_logs_in_fills_a_cart_and_logs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_demo(tmp_path, monkeypatch)
    async with demo.lifespan(demo.app), client_for(demo) as client:
        home = await client.get("/")
        assert "Log in" in home.text
        assert "maxlength=40" in home.text  # the name, as the server cuts it
        icon = await client.get("/favicon.ico")
        assert (icon.status_code, icon.headers["content-type"]) == (200, "image/svg+xml")
        assert "<link rel=icon href=/static/favicon.svg" in home.text
        assert "set-cookie" in home.headers  # the visit counter started a session
        # A stored session (the visit counter) that fails the log-in check: 403, not 401.
        assert (await client.get("/profile")).status_code == 403
        before = client.cookies["session"]
        refused = await client.post("/login", content="username=Ada", headers=FORM)
        assert refused.status_code == 403  # a form without the page's CSRF token
        token = field_token(home.text)
        login = await client.post(
            "/login", content=f"csrf_token={token}&username=Ada+%3Cb%3E", headers=FORM
        )
        assert login.status_code == 303
        assert client.cookies["session"] != before  # regenerated at log-in
        page = (await client.get("/")).text
        assert "Hello, Ada &lt;b&gt;" in page
        assert "Logged in as Ada" in page
        token = field_token(page)  # a new one since the log-in
        # The form says how long an item may be, and the server keeps no more.
        assert "name=item placeholder='an item' maxlength=60 required" in page
        await client.post("/cart", content=f"csrf_token={token}&item={'x' * 61}", headers=FORM)
        await client.post("/cart", content=f"csrf_token={token}&item=tea", headers=FORM)
        await client.post("/cart", content=f"item=&csrf_token={token}", headers=FORM)
        profile = (await client.get("/profile")).json()
        assert profile["cart"] == ["x" * 60, "tea"]
        assert profile["username"] == "Ada <b>"
        await client.post("/logout", headers={"X-CSRF-Token": meta_token(page)})
        after = (await client.get("/")).text
        assert "You have been logged out." in after
        assert "Log in" in after
        assert (await client.get("/profile")).status_code == 403


async def test_the_demo_sends_a_signed_out_browser_to_log_in_and_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_demo(tmp_path, monkeypatch)
    browser = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with demo.lifespan(demo.app), client_for(demo) as client:
        sent = await client.get("/devices", headers=browser)
        assert (sent.status_code, sent.headers["location"]) == (303, "/?next=%2Fdevices")
        assert (await client.get("/devices")).status_code in (401, 403)  # a script: no page
        form = (await client.get(sent.headers["location"], headers=browser)).text
        assert "Log in to see /devices." in form
        assert "<input type=hidden name=next value='/devices'>" in form
        token = field_token(form)
        login = await client.post(
            "/login", content=f"csrf_token={token}&username=Ada&next=%2Fdevices", headers=FORM
        )
        assert (login.status_code, login.headers["location"]) == (303, "/devices")
        devices = await client.get("/devices", headers=browser)
        assert devices.status_code == 200
        # A next of another site is ignored: home, not elsewhere.
        out = await client.post("/logout", headers={"X-CSRF-Token": meta_token(devices.text)})
        assert out.status_code == 303
        home = (await client.get("/")).text
        assert "Welcome" in home
        token = field_token(home)
        away = await client.post(
            "/login",
            content=f"csrf_token={token}&username=Ada&next=https%3A%2F%2Fevil.example",
            headers=FORM,
        )
        assert away.headers["location"] == "/"


async def test_the_demo_keeps_its_data_to_its_owner_and_shows_visitors_no_server_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # as an older demo left it
    demo = load_demo(data, monkeypatch)
    async with demo.lifespan(demo.app), client_for(demo) as client:
        await client.get("/")
        token = field_token((await client.get("/")).text)
        await client.post("/login", content=f"csrf_token={token}&username=Ada", headers=FORM)
        for page in ("/session", "/"):
            text = (await client.get(page)).text
            assert str(tmp_path) not in text
            assert "sessions.db" not in text
    assert data.stat().st_mode & 0o777 == 0o700  # the database's folder: the owner's only
    assert (data / "sessions.db").exists()
    assert {path.stat().st_mode & 0o077 for path in data.glob("*-key")} == {0}


FORM = {"content-type": "application/x-www-form-urlencoded"}


def field_token(page: str) -> str:
    """The CSRF token of the page's first form."""
    found = re.search(r'name="csrf_token" value="([\w-]+)"', page)
    assert found is not None, page
    return found.group(1)


def meta_token(page: str) -> str:
    """The CSRF token the page gives its scripts."""
    found = re.search(r"<meta name=csrf-token content=([\w-]+)>", page)
    assert found is not None, page
    return found.group(1)


def test_the_demo_script_serves_on_loopback_and_says_where(tmp_path: Path) -> None:
    """`python examples/demo.py` starts uvicorn and prints the address to open."""
    port = free_port()
    code = (
        "import runpy, uvicorn; real = uvicorn.run\n"
        "def run(app, host, port):\n"
        f"    real(app, host=host, port={port}, log_level='warning')\n"
        "uvicorn.run = run\n"
        f"runpy.run_path({str(EXAMPLES / 'demo.py')!r}, run_name='__main__')"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DEMO_DATA_DIR": str(tmp_path)}
    env.pop("SESSION_SECRET_KEY", None)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and example
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline().decode()
        assert "open http://127.0.0.1:8000 in your browser" in first_line
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the demo did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert "Log in" in response.text
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


async def test_the_redis_example_keeps_sessions_in_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio as aioredis

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SESSION_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("COOKIE_SECURE", "0")
    example = load("redis_app")
    async with example.sessions.lifespan(example.app), client_for(example) as client:
        assert (await client.get("/me")).status_code == 401
        await client.post("/login", params={"user_id": 7})
        await client.post("/cart", params={"item": "tea"})
        me = (await client.get("/me")).json()
        assert (me["user_id"], me["cart"]) == (7, ["tea"])
        direct = aioredis.Redis.from_url(redis_url)
        keys = [key async for key in direct.scan_iter(match="session:*")]
        await direct.aclose()
        assert len(keys) >= 1
        await client.post("/logout")
        assert (await client.get("/me")).status_code == 401


def test_the_redis_example_refuses_to_start_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi_session_deps import ConfigurationError

    monkeypatch.delenv("SESSION_SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SESSION_SECRET_KEY"):
        load("redis_app")


def test_two_worker_processes_share_every_session(redis_url: str) -> None:
    """uvicorn with 2 workers on one Redis: a logged-in client is known to both."""
    env = {
        "REDIS_URL": redis_url,
        "SESSION_SECRET_KEY": "multi-process-test-key-0123456789abcdef",
        "COOKIE_SECURE": "0",
    }
    with uvicorn_server(
        "redis_app:app", app_dir=EXAMPLES, env=env, workers=2, ready_path="/me"
    ) as base:
        cookies = httpx.post(base + "/login", params={"user_id": 42}, timeout=5).cookies
        workers: set[int] = set()
        for _ in range(50):
            # A new connection every time, so the kernel spreads them over both workers.
            response = httpx.get(base + "/me", cookies=cookies, timeout=5)
            assert response.status_code == 200
            assert response.json()["user_id"] == 42
            workers.add(response.json()["worker"])
        extra = 0
        while len(workers) < 2 and extra < 200:  # bounded: only if the first 50 were unlucky
            workers.add(httpx.get(base + "/me", cookies=cookies, timeout=5).json()["worker"])
            extra += 1
        assert len(workers) == 2


async def test_the_tutorial_style_app_logs_in_counts_visits_and_logs_out() -> None:
    tutorial = load("tutorial_style")
    async with client_for(tutorial) as client:
        assert (await client.get("/profile")).status_code == 401
        await client.post("/login", params={"username": "guest"})
        before = client.cookies["session"]
        login = await client.post("/login", params={"username": "grace"})
        assert login.status_code == 303
        assert client.cookies["session"] != before  # a new id at log-in: no fixation
        async with client_for(tutorial) as holder_of_the_old_id:
            holder_of_the_old_id.cookies.set("session", before)
            assert (await holder_of_the_old_id.get("/profile")).status_code == 401
        assert (await client.get("/profile")).json() == {"user": "grace", "visits": 1}
        assert (await client.get("/profile")).json() == {"user": "grace", "visits": 2}
        home = await client.get("/")
        assert "set-cookie" not in home.headers  # never touched the session
        logout = await client.post("/logout")
        assert "expires=Thu, 01 Jan 1970 00:00:00 GMT" in logout.headers["set-cookie"]
        assert (await client.get("/profile")).status_code == 401


async def test_the_demo_remakes_a_table_left_by_an_older_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "sessions.db") as old:  # without the user_id column
        old.execute(
            "CREATE TABLE sessions (id_hash VARCHAR(64) PRIMARY KEY, data JSON NOT NULL, "
            "meta JSON NOT NULL, expires_at FLOAT NOT NULL)"
        )
    old.close()
    demo = load_demo(tmp_path, monkeypatch)
    async with demo.lifespan(demo.app), client_for(demo) as client:
        token = field_token((await client.get("/")).text)
        await client.post("/login", content=f"csrf_token={token}&username=Ada", headers=FORM)
        devices = await client.get("/devices")
        assert devices.status_code == 200
        assert "this device" in devices.text
    with sqlite3.connect(tmp_path / "sessions.db") as new:
        columns = {row[1] for row in new.execute("PRAGMA table_info(sessions)")}
    new.close()
    assert "user_id" in columns
