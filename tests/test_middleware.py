"""The commit point: ordering against the response, store faults, non-HTTP scopes."""

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Message

from fastapi_session_deps import MemoryBackend, SessionManager, SessionMiddleware
from fastapi_session_deps.middleware import SessionCommitMiddleware

from .helpers import (
    SECRET,
    SwitchableBackend,
    call,
    cookie_header,
    empty_body_receiver,
    http_scope,
)
from .support import AppSession, ManagerFactory, build_app

pytestmark = pytest.mark.anyio


def streaming_app(sessions: SessionManager[AppSession]) -> FastAPI:
    app = build_app(sessions)

    @app.post("/incr-stream")
    async def incr_stream(
        session: Annotated[AppSession, Depends(sessions.get_session)],
    ) -> StreamingResponse:
        session.counter += 1
        return StreamingResponse(iter([b"x"] * 3))

    return app


@pytest.mark.parametrize("path", ["/incr", "/incr-stream"])
async def test_the_write_is_stored_before_the_status_line_goes_out(
    manager: SessionManager[AppSession], path: str
) -> None:
    """A client that fires its next request the instant the response starts reads its write."""
    app = streaming_app(manager)
    first = await call(app, "/incr", "POST")
    token = first.cookie()
    assert token
    seen_at_start: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            # Still inside the first response: nothing of its body has been sent yet.
            second = await call(app, "/read", headers=cookie_header(token))
            seen_at_start.append(int(second.body.split(b'"counter":')[1].split(b",")[0]))

    await app(http_scope(path, "POST", cookie_header(token)), empty_body_receiver(), send)
    assert seen_at_start == [2]


def faulty_app(
    make_manager: ManagerFactory, store: SwitchableBackend, **options: object
) -> FastAPI:
    return build_app(make_manager(backend=store, **options))


@pytest.fixture
def store() -> SwitchableBackend:
    return SwitchableBackend(MemoryBackend())


async def test_an_unreachable_store_on_load_is_a_503_with_retry_after(
    make_manager: ManagerFactory, store: SwitchableBackend
) -> None:
    app = faulty_app(make_manager, store)
    token = (await call(app, "/incr", "POST")).cookie()
    assert token
    store.down = {"get"}
    response = await call(app, "/read", headers=cookie_header(token))
    assert response.status == 503
    assert response.header("retry-after") == "1"
    assert response.header("content-type") == "application/json"
    assert b"session store is unavailable" in response.body
    store.down = set()
    back = await call(app, "/read", headers=cookie_header(token))
    assert back.status == 200
    assert b'"counter":1' in back.body


BROWSER = (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")


@pytest.mark.parametrize(
    ("down", "method", "path"), [("get", "GET", "/read"), ("update", "POST", "/incr")]
)
@pytest.mark.parametrize("api", ["typed", "request.session"])
async def test_a_browser_gets_the_store_outage_as_a_page_and_a_script_as_json(
    make_manager: ManagerFactory,
    store: SwitchableBackend,
    down: str,
    method: str,
    path: str,
    api: str,
) -> None:
    if api == "typed":
        app: ASGIApp = faulty_app(make_manager, store)
    else:
        app = dropin_counter(store)
    token = (await call(app, "/incr", "POST")).cookie()
    assert token
    store.down = {down}
    page = await call(app, path, method, headers=[*cookie_header(token), BROWSER])
    assert (page.status, page.header("retry-after")) == (503, "1")
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert b"<h1>Please try again in a moment</h1>" in page.body
    assert b"Nothing was changed" in page.body
    script = await call(app, path, method, headers=[*cookie_header(token), (b"accept", b"*/*")])
    assert (script.status, script.header("content-type")) == (503, "application/json")
    assert b"session store is unavailable" in script.body


def dropin_counter(store: SwitchableBackend) -> ASGIApp:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET, backend=store, https_only=False)

    @app.post("/incr")
    async def incr(request: Request) -> int:
        request.session["counter"] = request.session.get("counter", 0) + 1
        return int(request.session["counter"])

    @app.get("/read")
    async def read(request: Request) -> dict[str, int]:
        return {"counter": request.session.get("counter", 0)}

    return app


@pytest.mark.parametrize(("operation", "path"), [("update", "/incr"), ("set", "/login")])
async def test_an_unreachable_store_on_save_replaces_the_response_with_a_503(
    make_manager: ManagerFactory, store: SwitchableBackend, operation: str, path: str
) -> None:
    app = faulty_app(make_manager, store)
    token = (await call(app, "/incr", "POST")).cookie()
    assert token
    store.down = {operation}
    response = await call(app, path, "POST", headers=cookie_header(token))
    assert response.status == 503
    assert response.header("retry-after") == "1"
    assert response.cookie() is None
    # Exactly one complete response went out: the route's own was dropped whole.
    starts = [m for m in response.messages if m["type"] == "http.response.start"]
    assert len(starts) == 1
    assert b"session store is unavailable" in response.body
    store.down = set()
    after = await call(app, "/read", headers=cookie_header(token))
    assert b'"counter":1' in after.body  # the 503'd change was not kept


async def test_the_anonymous_policy_goes_on_without_a_session(
    make_manager: ManagerFactory, store: SwitchableBackend, caplog: pytest.LogCaptureFixture
) -> None:
    app = faulty_app(make_manager, store, on_backend_error="anonymous")
    token = (await call(app, "/incr", "POST")).cookie()
    assert token
    store.down = {"get", "set", "update"}
    read = await call(app, "/read", headers=cookie_header(token))
    assert read.status == 200
    assert b'"counter":0' in read.body
    assert (await call(app, "/me", headers=cookie_header(token))).status == 401
    incr = await call(app, "/incr", "POST", headers=cookie_header(token))
    assert incr.status == 200
    assert incr.cookie() is None  # nothing was saved, so no cookie either
    assert "going on without a session" in caplog.text
    store.down = set()
    assert b'"counter":1' in (await call(app, "/read", headers=cookie_header(token))).body


async def test_non_http_scopes_pass_through_untouched(manager: SessionManager[AppSession]) -> None:
    seen: list[dict[str, object]] = []

    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(dict(scope))

    middleware = SessionCommitMiddleware(inner, manager)  # type: ignore[arg-type]
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan"}]


async def test_the_middleware_works_under_other_middleware(
    manager: SessionManager[AppSession],
) -> None:
    from starlette.middleware.gzip import GZipMiddleware

    app = build_app(manager)
    app.add_middleware(GZipMiddleware, minimum_size=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/incr")
        response = await client.post("/incr", headers={"accept-encoding": "gzip"})
        assert response.json() == {"counter": 2}
        assert response.headers["content-encoding"] == "gzip"


def test_a_websocket_is_refused_with_try_again_later_when_the_store_is_down(
    store: SwitchableBackend,
) -> None:
    from fastapi import WebSocket
    from fastapi.testclient import TestClient

    from fastapi_session_deps import CookieFrontend

    sessions = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=store
    )
    app = build_app(sessions)

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket, session: Annotated[AppSession, Depends(sessions.get_session)]
    ) -> None:
        await websocket.accept()  # pragma: no cover - refused before this

    with TestClient(app) as client:
        client.post("/incr")
        store.down = {"get"}
        connection = client.websocket_connect("/ws")
        with pytest.raises(Exception) as refused:  # noqa: PT011 - the class varies by version
            connection.__enter__()
    assert getattr(refused.value, "code", None) == 1013


@pytest.mark.parametrize(
    ("route_vary", "expected"),
    [
        (None, ["Cookie"]),
        ("Accept-Encoding", ["Accept-Encoding, Cookie"]),
        ("cookie", ["cookie"]),
        ("Accept, Cookie", ["Accept, Cookie"]),
        ("*", ["*"]),
    ],
)
async def test_vary_names_the_cookie_once(
    manager: SessionManager[AppSession], route_vary: str | None, expected: list[str]
) -> None:
    from fastapi.responses import JSONResponse

    app = build_app(manager)

    @app.get("/vary")
    async def vary(session: Annotated[AppSession, Depends(manager.get_session)]) -> JSONResponse:
        headers = {"vary": route_vary} if route_vary else {}
        return JSONResponse({}, headers=headers)

    assert (await call(app, "/vary")).header_list("vary") == expected
