"""Requests that never touch the session cost no store read, with autoload on.

The drop-in loads ``request.session`` as a request starts, so that async code can use it
directly; that is a store read for every request carrying a session cookie. A mounted
`StaticFiles` app never reads the session, and the paths of ``lazy_paths`` (health probes)
are left to load on first use: neither reads the store.
"""

import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Message

from fastapi_session_deps import (
    ConfigurationError,
    MemoryBackend,
    SessionMiddleware,
    load_session,
)

from .helpers import (
    SECRET,
    Clock,
    CountingBackend,
    call,
    cookie_header,
    empty_body_receiver,
    http_scope,
)

pytestmark = pytest.mark.anyio


def app_with(tmp_path: Path, counting: CountingBackend, **settings: object) -> Starlette:
    (tmp_path / "site.css").write_text("body { color: black }")

    async def login(request: Request) -> JSONResponse:
        request.session["user"] = "ada"
        return JSONResponse({"ok": True})

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.session.get("user")})

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def health_with_session(request: Request) -> JSONResponse:
        session = await load_session(request)  # lazy here: loaded when asked
        return JSONResponse({"user": session.get("user")})

    def sync_health(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.session.get("user")})  # loads on first use

    static = StaticFiles(directory=tmp_path)
    app = Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/health", health),
            Route("/health/session", health_with_session),
            Route("/health/sync", sync_health),
            Mount("/static", app=static),
            Mount("/v1", app=Router(routes=[Mount("/assets", app=static)])),
        ]
    )
    app.add_middleware(SessionMiddleware, secret_key=SECRET, backend=counting, **settings)
    return app


@pytest.fixture
def counting(clock: Clock) -> CountingBackend:
    return CountingBackend(MemoryBackend(clock=clock))


async def reads(counting: CountingBackend, app: Starlette, path: str, token: str) -> int:
    before = counting.calls["get"]
    answer = await call(app, path, headers=cookie_header(token))
    assert answer.status == 200, (path, answer.body)
    return counting.calls["get"] - before


async def test_static_files_and_lazy_paths_read_nothing_and_the_rest_as_before(
    tmp_path: Path, counting: CountingBackend
) -> None:
    app = app_with(tmp_path, counting, lazy_paths=["/health"])
    token = (await call(app, "/login", "POST")).cookie()
    assert token
    assert await reads(counting, app, "/static/site.css", token) == 0
    assert await reads(counting, app, "/v1/assets/site.css", token) == 0  # mounted deeper
    assert await reads(counting, app, "/health", token) == 0
    assert await reads(counting, app, "/me", token) == 1  # autoload, as before
    # On a lazy path the session is still there when asked for, in async and sync code.
    for path in ("/health/session", "/health/sync"):
        answer = await call(app, path, headers=cookie_header(token))
        assert answer.body == b'{"user":"ada"}'


async def test_without_lazy_paths_a_probe_reads_the_store_as_before(
    tmp_path: Path, counting: CountingBackend
) -> None:
    app = app_with(tmp_path, counting)
    token = (await call(app, "/login", "POST")).cookie()
    assert token
    assert await reads(counting, app, "/health", token) == 1
    assert await reads(counting, app, "/static/site.css", token) == 0


async def test_lazy_paths_match_after_the_root_path(
    tmp_path: Path, counting: CountingBackend
) -> None:
    app = app_with(tmp_path, counting, lazy_paths=[re.compile("/health$")])
    token = (await call(app, "/login", "POST")).cookie()
    assert token
    before = counting.calls["get"]
    scope = {**http_scope("/shop/health", headers=cookie_header(token)), "root_path": "/shop"}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, empty_body_receiver(), send)
    assert sent[0]["status"] == 200
    assert counting.calls["get"] == before


async def test_a_lazy_path_that_is_not_a_pattern_is_refused_at_start_up(
    tmp_path: Path, counting: CountingBackend
) -> None:
    app = app_with(tmp_path, counting, lazy_paths=["(unclosed"])
    with pytest.raises(ConfigurationError, match="lazy_paths: '\\(unclosed' is not a regular"):
        await call(app, "/me")
