"""Races that must not bring back what another request ended or changed.

- A request that moves its session to a new id (a log-in, a privilege change) is held in
  flight while the same user signs out in another tab, or revokes every session from "Your
  devices". When it finishes, its response must not hand out a live cookie: the ending is
  final. On every store.
- After an encryption key rotation, one worker reads a session sealed under the old key
  while another signs the user out of it; the first worker's next change must not write
  the old values back. Two real worker processes, on Redis, SQLite and PostgreSQL.
"""

import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_session_deps import Backend, RedisBackend, SessionManager, SQLBackend
from fastapi_session_deps.backends.encrypted import new_key

from ..helpers import RawResponse, call, cookie_header, uvicorn_server
from ..support import WITH_THE_SERVICE, AppSession, ManagerFactory, each_store
from . import rotation_app

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)


def racing_app(sessions: SessionManager[AppSession]) -> tuple[FastAPI, anyio.Event, anyio.Event]:
    """``/slow-login`` logs in, then waits (``moving`` set) for ``release`` before it
    answers: its move to a new id happens at its commit, after whatever ran meanwhile."""
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]
    moving, release = anyio.Event(), anyio.Event()

    @app.post("/login")
    async def login(session: Session) -> None:
        await sessions.login(session, "alice")
        session.user_id = 1

    @app.post("/slow-login")
    async def slow_login(session: Session, regenerate_only: bool = False) -> None:
        if regenerate_only:
            await sessions.regenerate(session)  # a privilege change
        else:
            await sessions.login(session, "alice")
        session.counter += 1
        moving.set()
        await release.wait()

    @app.post("/logout")
    async def logout(session: Session) -> None:
        await sessions.destroy(session)

    @app.post("/visit")
    async def visit(session: Session) -> None:
        session.counter += 1  # an anonymous session, bound to nobody

    @app.get("/me")
    async def me(session: Annotated[AppSession, Depends(sessions.require_session)]) -> None:
        pass

    return app, moving, release


@pytest.mark.parametrize(
    ("ending", "regenerate_only"),
    [("log-out", False), ("revoke-all", False), ("revoke", False), ("log-out", True)],
)
async def test_a_move_in_flight_never_brings_back_a_session_ended_meanwhile(
    make_manager: ManagerFactory, ending: str, regenerate_only: bool
) -> None:
    sessions = make_manager(user_index=True)
    app, moving, release = racing_app(sessions)
    token = (await call(app, "/login", "POST")).cookie()
    assert token
    endings: dict[str, Callable[[], Awaitable[object]]] = {
        "log-out": lambda: call(app, "/logout", "POST", cookie_header(token)),
        "revoke-all": lambda: sessions.users.revoke_all("alice"),
        "revoke": lambda: revoke_the_one(sessions),
    }
    slow: list[RawResponse] = []

    async def log_in_slowly() -> None:
        path = f"/slow-login?regenerate_only={str(regenerate_only).lower()}"
        slow.append(await call(app, path, "POST", cookie_header(token)))

    async with anyio.create_task_group() as group:
        group.start_soon(log_in_slowly)
        await moving.wait()
        await endings[ending]()
        release.set()

    assert slow[0].status == 200
    handed_out = slow[0].cookie()
    assert handed_out is None  # no token for a session that did not survive
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401
    assert await sessions.users.list("alice") == []  # nothing left behind, even unlisted


async def test_an_anonymous_session_s_move_is_dropped_as_well(
    make_manager: ManagerFactory,
) -> None:
    sessions = make_manager(user_index=True)
    app, moving, release = racing_app(sessions)
    token = (await call(app, "/visit", "POST")).cookie()
    assert token
    slow: list[RawResponse] = []

    async def regenerate_slowly() -> None:
        path = "/slow-login?regenerate_only=true"
        slow.append(await call(app, path, "POST", cookie_header(token)))

    async with anyio.create_task_group() as group:
        group.start_soon(regenerate_slowly)
        await moving.wait()
        await call(app, "/logout", "POST", cookie_header(token))
        release.set()
    assert slow[0].cookie() is None
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401


async def revoke_the_one(sessions: SessionManager[AppSession]) -> None:
    (listed,) = await sessions.users.list("alice")
    assert await sessions.users.revoke("alice", listed.handle)


async def test_without_an_ending_the_slow_move_goes_through(make_manager: ManagerFactory) -> None:
    sessions = make_manager(user_index=True)
    app, moving, release = racing_app(sessions)
    token = (await call(app, "/login", "POST")).cookie()
    assert token
    release.set()
    moved = await call(app, "/slow-login", "POST", cookie_header(token))
    assert moving.is_set()
    new_token = moved.cookie()
    assert new_token
    assert new_token != token
    assert (await call(app, "/me", headers=cookie_header(new_token))).status == 200
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401
    assert len(await sessions.users.list("alice")) == 1


# -- a key rotation, with two real worker processes -----------------------------------------

KEY, OLD_KEY = new_key(), new_key()


@asynccontextmanager
async def shared_store(
    name: str, request: pytest.FixtureRequest, directory: Path
) -> AsyncIterator[tuple[Backend, dict[str, str]]]:
    """A store this process and the workers share, and the workers' settings for it."""
    if name == "redis":
        url, prefix = request.getfixturevalue("redis_url"), f"rotation:{uuid.uuid4().hex}:"
        store: Backend = RedisBackend.from_url(url, key_prefix=prefix)
        settings = {"REDIS_URL": url, "KEY_PREFIX": prefix}
    else:
        url = (
            f"sqlite+aiosqlite:///{directory}/sessions.db"
            if name == "sqlite"
            else request.getfixturevalue(f"{name}_url")
        )
        table = f"rotation_{uuid.uuid4().hex[:12]}"
        store = SQLBackend.from_url(url, table_name=table)
        await store.create_table()
        settings = {"SQL_URL": url, "SQL_TABLE": table}
    try:
        yield store, settings
    finally:
        if isinstance(store, SQLBackend):
            await store.drop_table()
        await store.aclose()


@pytest.mark.parametrize("name", ["redis", "sqlite", "postgres"])
async def test_a_key_rotation_never_undoes_another_workers_change(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with shared_store(name, request, tmp_path) as (store, settings):
        # Before the rotation: a session sealed with the old key.
        before = rotation_app.build(store, keys=[OLD_KEY])
        cookie = (await call(before, "/login", "POST")).cookie()
        assert cookie
        # After it: two workers with the new ring, new key first.
        env = {**settings, "SESSION_ENCRYPTION_KEYS": f"{KEY},{OLD_KEY}"}
        serve = functools.partial(
            uvicorn_server,
            "tests.reliability.rotation_app:create_app",
            factory=True,
            app_dir=Path(__file__).parents[2],
            env=env,
            ready_path="/me",
        )
        with serve() as one, serve() as two:
            jar = {"session": cookie}
            async with (
                httpx.AsyncClient(base_url=one, cookies=jar) as first,
                httpx.AsyncClient(base_url=two, cookies=jar) as second,
            ):
                assert (await first.get("/me")).json()["role"] == "admin"  # read, old key
                assert (await second.post("/demote")).status_code == 200  # signed out
                assert (await first.post("/incr")).status_code == 200  # another field
                after = (await second.get("/me")).json()
        assert (after["user_id"], after["role"], after["counter"]) == (None, "user", 1)
        # Every value is under the new key now: the old one can leave the ring.
        retired = await call(
            rotation_app.build(store, keys=[KEY]), "/me", headers=cookie_header(cookie)
        )
        assert json.loads(retired.body)["role"] == "user"
