"""The drop-in moves a session to a new id by itself when who it belongs to changes.

Log-in code written for Starlette's cookie sessions never calls `regenerate_session`:
starlette-login's `login_user`, sqladmin's and starlette-admin's documented
`AuthenticationBackend.login`, authlib's documented callback, and most hand-written ones.
With server-side data that is session fixation: an attacker who plants their own session's
cookie in the victim's browser (a sibling subdomain, plain HTTP on the same host) would be
logged in as the victim once the victim logs in. Each pattern here is replayed as that
attack, on every store, with starlette-login's own code for its own.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette_login.login_manager import LoginManager
from starlette_login.mixins import UserMixin
from starlette_login.utils import login_user, logout_user

from fastapi_session_deps import Backend, ConfigurationError, SessionMiddleware
from fastapi_session_deps.starlette import DEFAULT_IDENTITY_KEYS

from .helpers import SECRET
from .support import STORES, each_store

pytestmark = pytest.mark.anyio

backend = pytest.fixture(params=STORES, name="backend")(each_store)


class Member(UserMixin):
    def __init__(self, number: int) -> None:
        self.number = number

    @property
    def identity(self) -> int:
        return self.number


async def starlette_login(request: Request) -> None:
    await login_user(request, Member(7))


async def sqladmin(request: Request) -> None:
    request.session.update({"token": "token-of-the-admin-7"})  # its documented backend


async def starlette_admin(request: Request) -> None:
    request.session.update({"username": "admin-7"})  # its documented provider


async def authlib(request: Request) -> None:
    request.session["user"] = {"sub": "7", "name": "Victim"}  # its documented callback


async def by_hand(request: Request) -> None:
    request.session["user_id"] = 7


LOG_INS: dict[str, Callable[[Request], Awaitable[None]]] = {
    "starlette-login": starlette_login,
    "sqladmin": sqladmin,
    "starlette-admin": starlette_admin,
    "authlib": authlib,
    "by hand": by_hand,
}


def app_on(
    store: Backend, log_in: Callable[[Request], Awaitable[None]], **options: Any
) -> Starlette:
    async def visit(request: Request) -> JSONResponse:
        request.session["cart"] = ["book"]  # any visitor gets a session
        return JSONResponse({"ok": True})

    async def login(request: Request) -> JSONResponse:
        await log_in(request)
        return JSONResponse({"ok": True})

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def logout(request: Request) -> JSONResponse:
        await logout_user(request)
        for key in ("token", "username", "user", "user_id"):
            request.session.pop(key, None)
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/visit", visit, methods=["POST"]),
            Route("/login", login, methods=["POST"]),
            Route("/whoami", whoami),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, backend=store, **options)],
    )
    app.state.login_manager = LoginManager(redirect_to="/login", secret_key=SECRET)
    return app


def client_of(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def plant_and_log_in(app: Starlette) -> tuple[str, httpx.Response]:
    """The attacker's session's cookie, planted in the victim's browser, and the victim's
    log-in with it."""
    async with client_of(app) as attacker:
        assert (await attacker.post("/visit")).status_code == 200
        planted = attacker.cookies["session"]
    async with client_of(app) as victim:
        victim.cookies.set("session", planted)
        logged_in = await victim.post("/login")
    return planted, logged_in


@pytest.mark.parametrize("library", LOG_INS)
async def test_a_log_in_that_never_regenerates_still_leaves_the_planted_id_behind(
    backend: Backend, library: str
) -> None:
    planted, logged_in = await plant_and_log_in(app_on(backend, LOG_INS[library]))
    assert logged_in.status_code == 200
    moved = logged_in.cookies.get("session")
    assert moved is not None
    assert moved != planted  # the victim's browser got a new id
    async with client_of(app_on(backend, LOG_INS[library])) as attacker:
        attacker.cookies.set("session", planted)
        seen = (await attacker.get("/whoami")).json()
        assert seen == {}  # the attacker's id is no session at all any more
    async with client_of(app_on(backend, LOG_INS[library])) as victim:
        victim.cookies.set("session", moved)
        mine = (await victim.get("/whoami")).json()
    assert mine["cart"] == ["book"]  # the data moved along, as regenerate_session moves it
    assert set(mine) & DEFAULT_IDENTITY_KEYS


async def test_without_it_the_planted_id_is_logged_in_as_the_victim(backend: Backend) -> None:
    # What identity_keys=False gives up: the attack succeeds.
    app = app_on(backend, by_hand, identity_keys=False)
    planted, logged_in = await plant_and_log_in(app)
    assert logged_in.cookies.get("session") is None  # no new id
    async with client_of(app) as attacker:
        attacker.cookies.set("session", planted)
        assert (await attacker.get("/whoami")).json()["user_id"] == 7


async def test_a_log_out_that_only_removes_the_keys_moves_the_session_too(
    backend: Backend,
) -> None:
    app = app_on(backend, starlette_login)
    async with client_of(app) as browser:
        await browser.post("/visit")  # a cart, kept after the log-out
        await browser.post("/login")
        logged_in = browser.cookies["session"]
        await browser.post("/logout")
        assert browser.cookies["session"] != logged_in
        assert (await browser.get("/whoami")).json() == {"cart": ["book"]}
    async with client_of(app) as old:
        old.cookies.set("session", logged_in)
        assert (await old.get("/whoami")).json() == {}


async def test_other_changes_keep_the_id(backend: Backend) -> None:
    app = app_on(backend, by_hand)
    async with client_of(app) as browser:
        await browser.post("/visit")
        first = browser.cookies["session"]
        await browser.post("/visit")  # the cart again: no identity key touched
        assert browser.cookies["session"] == first
        await browser.post("/login")
        second = browser.cookies["session"]
        await browser.post("/login")  # the same user again: not a change
        assert browser.cookies["session"] == second != first


async def test_the_keys_can_be_chosen(backend: Backend) -> None:
    async def member(request: Request) -> None:
        request.session["member"] = 7

    app = app_on(backend, member, identity_keys=[*DEFAULT_IDENTITY_KEYS, "member"])
    planted, logged_in = await plant_and_log_in(app)
    assert logged_in.cookies.get("session") not in (None, planted)
    untouched = app_on(backend, member)  # not one of the default keys
    planted, logged_in = await plant_and_log_in(untouched)
    assert logged_in.cookies.get("session") is None


@pytest.mark.parametrize("value", ["user", 7, [1, 2]])
def test_a_setting_that_is_not_a_list_of_keys_is_refused(value: object) -> None:
    middleware = SessionMiddleware(Starlette(), secret_key=SECRET, identity_keys=value)
    assert isinstance(middleware.refusal, ConfigurationError)
    assert "identity_keys" in str(middleware.refusal)
