"""Races that must not bring an ended session back, on every store.

A request that moves its session to a new id (a log-in, a privilege change) is held in
flight while the same user signs out in another tab, or revokes every session from "Your
devices". When it finishes, its response must not hand out a live cookie: the ending is
final.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio
import pytest
from fastapi import Depends, FastAPI

from fastapi_session_deps import SessionManager

from ..helpers import RawResponse, call, cookie_header
from ..support import WITH_THE_SERVICE, AppSession, ManagerFactory, each_store

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

    @app.get("/me")
    async def me(session: Annotated[AppSession, Depends(sessions.require_session)]) -> None:
        pass

    return app, moving, release


@pytest.mark.parametrize("regenerate_only", [False, True])
@pytest.mark.parametrize("ending", ["log-out", "revoke-all", "revoke"])
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
