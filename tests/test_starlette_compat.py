"""`SessionMiddleware` against every case Starlette's own session tests cover, plus ours.

Each Starlette case has a test here, written for this middleware and run on every store.
Where the behaviour differs on purpose, the test asserts the difference and says why.
"""

import base64
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    MemoryBackend,
    Session,
    SessionMiddleware,
    SessionNotLoaded,
    destroy_session,
    load_session,
    regenerate_session,
)
from fastapi_session_deps.signing import TokenSigner, store_key

from .helpers import SECRET, Clock, CountingBackend, SwitchableBackend, call, cookie_header
from .support import PassTime, StoreRecords

pytestmark = pytest.mark.anyio

# -- the routes, each loading the session the way async code must without autoload ---------


async def view_session(request: Request) -> JSONResponse:
    await load_session(request)
    return JSONResponse({"session": request.session})


async def update_session(request: Request) -> JSONResponse:
    await load_session(request)
    request.session.update(await request.json())
    return JSONResponse({"session": request.session})


async def inplace_update_session(request: Request) -> JSONResponse:
    await load_session(request)
    session = request.session
    session |= await request.json()
    return JSONResponse({"session": request.session})


async def popitem_session(request: Request) -> JSONResponse:
    await load_session(request)
    request.session.popitem()
    return JSONResponse({"session": request.session})


async def clear_session(request: Request) -> JSONResponse:
    await load_session(request)
    request.session.clear()
    return JSONResponse({"session": request.session})


async def append_to_list(request: Request) -> JSONResponse:
    await load_session(request)
    request.session.setdefault("items", [])
    request.session["items"].append((await request.json())["item"])  # nested, in place
    return JSONResponse({"session": request.session})


async def no_session_access(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def sync_view(request: Request) -> JSONResponse:
    # A plain `def` endpoint runs in a worker thread: the first use loads transparently.
    return JSONResponse({"session": dict(request.session)})


async def unloaded_view(request: Request) -> JSONResponse:
    return JSONResponse({"session": dict(request.session)})


async def login(request: Request) -> JSONResponse:
    await regenerate_session(request)
    request.session["user"] = "ada"
    return JSONResponse({"ok": True})


async def logout(request: Request) -> JSONResponse:
    await destroy_session(request)
    return JSONResponse({"ok": True})


ROUTES = [
    Route("/view_session", view_session),
    Route("/update_session", update_session, methods=["POST"]),
    Route("/inplace_update_session", inplace_update_session, methods=["POST"]),
    Route("/popitem_session", popitem_session, methods=["POST"]),
    Route("/clear_session", clear_session, methods=["POST"]),
    Route("/append", append_to_list, methods=["POST"]),
    Route("/no_session", no_session_access),
    Route("/sync_view", sync_view),
    Route("/unloaded_view", unloaded_view),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]

MakeApp = Callable[..., Starlette]


@pytest.fixture
def make_app(counting: CountingBackend, clock: Clock) -> MakeApp:
    """A Starlette app with our middleware on the store under test; keywords override."""

    def factory(**options: Any) -> Starlette:
        options.setdefault("secret_key", SECRET)
        options.setdefault("backend", counting)
        options.setdefault("clock", clock)
        return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, **options)])

    return factory


def client(app: Any, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
async def http(make_app: MakeApp) -> AsyncIterator[httpx.AsyncClient]:
    # https_only=False so that a plain-http test client gets the cookie back.
    async with client(make_app(https_only=False)) as http_client:
        yield http_client


def attributes(response: httpx.Response) -> list[str]:
    return [part.strip().lower() for part in response.headers["set-cookie"].split(";")]


# -- Starlette's cases --------------------------------------------------------------------


async def test_session(http: httpx.AsyncClient, store_records: StoreRecords) -> None:
    assert (await http.get("/view_session")).json() == {"session": {}}
    response = await http.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    assert "max-age=1209600" in attributes(response)  # 14 days, as Starlette
    assert (await http.get("/view_session")).json() == {"session": {"some": "data"}}
    assert (await http.post("/clear_session")).json() == {"session": {}}
    assert (await http.get("/view_session")).json() == {"session": {}}
    assert await store_records() == {}  # an emptied session is ended, not kept empty


@pytest.mark.parametrize("partitioned", [False, True])
async def test_partitioned_session(make_app: MakeApp, partitioned: bool) -> None:
    app = make_app(same_site="none", partitioned=partitioned)
    async with client(app, "https://testserver") as https:
        response = await https.post("/update_session", json={"some": "data"})
        assert ("partitioned" in attributes(response)) is partitioned
        response = await https.post("/clear_session")
        assert ("partitioned" in attributes(response)) is partitioned


async def test_session_expires(make_app: MakeApp, pass_time: PassTime) -> None:
    # Starlette expresses this with max_age=-1; a non-positive max_age is refused here (see
    # test_non_positive_max_age_is_refused), so the session is left to run out instead.
    async with client(make_app(https_only=False, max_age=60)) as http:
        response = await http.post("/update_session", json={"some": "data"})
        assert "max-age=60" in attributes(response)
        await pass_time(61)
        assert (await http.get("/view_session")).json() == {"session": {}}


async def test_secure_session(make_app: MakeApp) -> None:
    app = make_app(https_only=True)
    async with client(app, "https://testserver") as https, client(app) as plain:
        assert (await plain.get("/view_session")).json() == {"session": {}}
        response = await plain.post("/update_session", json={"some": "data"})
        assert response.json() == {"session": {"some": "data"}}
        assert "secure" in attributes(response)
        assert (await plain.get("/view_session")).json() == {"session": {}}  # not sent back
        assert (await https.get("/view_session")).json() == {"session": {}}
        await https.post("/update_session", json={"some": "data"})
        assert (await https.get("/view_session")).json() == {"session": {"some": "data"}}
        assert (await https.post("/clear_session")).json() == {"session": {}}
        assert (await https.get("/view_session")).json() == {"session": {}}


async def test_session_cookie_subpath(counting: CountingBackend) -> None:
    inner = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=SECRET,
                path="/second_app",
                backend=counting,
                https_only=False,
            )
        ],
    )
    app = Starlette(routes=[Mount("/second_app", app=inner)])
    async with client(app, "http://testserver/second_app") as http:
        response = await http.post("/update_session", json={"some": "data"})
        assert response.status_code == 200
        assert "path=/second_app" in attributes(response)


async def test_invalid_session_cookie(http: httpx.AsyncClient) -> None:
    await http.post("/update_session", json={"some": "data"})
    http.cookies.clear()
    http.cookies.set("session", "invalid")
    assert (await http.get("/view_session")).json() == {"session": {}}


async def test_session_cookie(make_app: MakeApp) -> None:
    async with client(make_app(https_only=False, max_age=None)) as http:
        response = await http.post("/update_session", json={"some": "data"})
        assert response.json() == {"session": {"some": "data"}}
        assert not any(a.startswith("max-age") for a in attributes(response))
        http.cookies.delete("session")
        assert (await http.get("/view_session")).json() == {"session": {}}


@pytest.mark.parametrize("max_age", [0, -1])
async def test_a_non_positive_max_age_expires_at_once_and_stores_nothing(
    make_app: MakeApp, store_records: StoreRecords, max_age: int
) -> None:
    # As Starlette: the cookie is sent with that Max-Age, so the browser drops it at once,
    # and a client that sends it back anyway has no session. Nothing is kept in the store.
    async with client(make_app(https_only=False, max_age=max_age)) as http:
        response = await http.post("/update_session", json={"some": "data"})
        assert response.json() == {"session": {"some": "data"}}
        assert f"; Max-Age={max_age}; " in response.headers["set-cookie"]
        token = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        http.cookies.set("session", token)
        assert (await http.get("/view_session")).json() == {"session": {}}
    assert await store_records() == {}


async def test_domain_cookie(make_app: MakeApp) -> None:
    async with client(make_app(https_only=False, domain=".example.com")) as http:
        response = await http.post("/update_session", json={"some": "data"})
        assert response.json() == {"session": {"some": "data"}}
        assert "domain=.example.com" in attributes(response)
        http.cookies.delete("session")
        assert (await http.get("/view_session")).json() == {"session": {}}


async def test_set_cookie_only_on_modification(http: httpx.AsyncClient) -> None:
    assert "set-cookie" in (await http.post("/update_session", json={"some": "data"})).headers
    response = await http.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}
    assert "set-cookie" not in response.headers


async def test_vary_cookie_on_access(http: httpx.AsyncClient) -> None:
    response = await http.post("/update_session", json={"some": "data"})
    assert "cookie" in response.headers.get("vary", "").lower()
    assert "cookie" in (await http.get("/view_session")).headers.get("vary", "").lower()
    assert "vary" not in (await http.get("/no_session")).headers


def test_session_tracks_modification() -> None:
    session = Session({"a": "1", "b": "2"})
    assert not session.modified
    session["c"] = "3"
    assert session.modified

    session = Session({"a": "1"})
    del session["a"]
    assert session.modified

    session = Session({"a": "1"})
    session.clear()
    assert session.modified

    session = Session({"a": "1"})
    session.pop("a")
    assert session.modified
    assert session.accessed

    session = Session({"a": "1"})
    assert session.pop("missing", None) is None
    assert not session.modified
    assert not session.accessed

    session = Session({"a": "1"})
    session.setdefault("b", "2")
    assert session.modified

    session = Session({"a": "1"})
    session.setdefault("a", "2")
    assert not session.modified


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        ("/inplace_update_session", {"c": "3"}, {"a": "1", "b": "2", "c": "3"}),
        ("/popitem_session", None, {"a": "1"}),
    ],
)
async def test_session_persists_mutations(
    http: httpx.AsyncClient, path: str, data: dict[str, str] | None, expected: dict[str, str]
) -> None:
    response = await http.post("/update_session", json={"a": "1", "b": "2"})
    assert response.json() == {"session": {"a": "1", "b": "2"}}
    assert (await http.post(path, json=data)).json() == {"session": expected}
    assert (await http.get("/view_session")).json() == {"session": expected}


# -- intended differences -----------------------------------------------------------------


async def test_the_cookie_carries_a_signed_id_not_the_data(
    http: httpx.AsyncClient, store_records: StoreRecords
) -> None:
    await http.post("/update_session", json={"secret": "in-the-store-only"})
    token = http.cookies["session"]
    verified = TokenSigner(SECRET, namespace="session").verify(token)
    assert verified is not None
    decoded = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert b"in-the-store-only" not in decoded + token.encode()
    [(key, fields)] = (await store_records()).items()
    assert store_key(verified.session_id) in key
    assert fields["secret"] == b'"in-the-store-only"'


def refused_at_start_up(**options: Any) -> str:
    """Start an app with these settings; return the error that stopped its start-up.

    The refusal is raised again by any request served without a lifespan.
    """
    from starlette.testclient import TestClient

    options.setdefault("backend", MemoryBackend())
    app = Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, **options)])
    with pytest.raises(ConfigurationError) as caught, TestClient(app):
        pass  # pragma: no cover - start-up fails
    with pytest.raises(ConfigurationError, match=re.escape(str(caught.value))):
        TestClient(app).get("/no_session")
    return str(caught.value)


def test_a_short_key_stops_the_start_up_and_says_how_to_make_one() -> None:
    message = refused_at_start_up(secret_key="example")
    assert "at least 32 bytes" in message
    assert "`fastapi-session-deps keygen`" in message


async def test_secure_and_httponly_by_default_over_https(make_app: MakeApp) -> None:
    async with client(make_app(), "https://testserver") as https:
        response = await https.post("/update_session", json={"a": 1})
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(attributes(response))


async def test_https_only_auto_is_secure_whenever_the_request_came_over_https(
    make_app: MakeApp,
) -> None:
    app = make_app()  # https_only="auto", the default
    async with client(app, "https://testserver") as https, client(app) as plain:
        assert "secure" in attributes(await https.post("/update_session", json={"a": 1}))
        assert "secure" in attributes(await https.post("/clear_session"))
        response = await plain.post("/update_session", json={"a": 1})
        assert "secure" not in attributes(response)  # so a plain-HTTP client keeps it
        assert (await plain.get("/view_session")).json() == {"session": {"a": 1}}


async def test_https_only_auto_trusts_the_scheme_a_proxy_reported(make_app: MakeApp) -> None:
    # Behind a TLS-terminating proxy, uvicorn --proxy-headers (ProxyHeadersMiddleware) sets
    # the scope's scheme from X-Forwarded-Proto of a trusted proxy; "auto" follows it.
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = ProxyHeadersMiddleware(make_app(), trusted_hosts="127.0.0.1")
    forwarded = await call(app, "/login", "POST", headers=[(b"x-forwarded-proto", b"https")])
    plain = await call(app, "/login", "POST")
    assert (forwarded.status, plain.status) == (200, 200)
    assert "; secure" in (forwarded.header("set-cookie") or "")
    assert "; secure" not in (plain.header("set-cookie") or "")


@pytest.mark.parametrize("https_only", [True, False])
async def test_explicit_https_only_means_what_it_says(make_app: MakeApp, https_only: bool) -> None:
    app = make_app(https_only=https_only)
    for base in ("http://testserver", "https://testserver"):
        async with client(app, base) as http:
            response = await http.post("/update_session", json={"a": 1})
            assert ("secure" in attributes(response)) is https_only


def test_without_a_backend_it_warns_and_uses_memory(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        middleware = SessionMiddleware(no_session_access, secret_key=SECRET)
    assert isinstance(middleware.engine.backend, MemoryBackend)
    assert "lost on restart" in caplog.text


def test_a_frontend_replaces_the_cookie_settings() -> None:
    frontend = CookieFrontend(SECRET, cookie_name="__Host-sid")
    middleware = SessionMiddleware(no_session_access, frontend=frontend, backend=MemoryBackend())
    assert middleware.engine.frontend is frontend
    assert "not both" in refused_at_start_up(secret_key=SECRET, frontend=frontend)
    assert "not both" in refused_at_start_up(frontend=frontend, cookie_name="sid")


# -- laziness, loading, helpers -----------------------------------------------------------


async def test_async_code_uses_request_session_without_any_extra_call(
    http: httpx.AsyncClient, make_app: MakeApp
) -> None:
    async def direct(request: Request) -> JSONResponse:
        return JSONResponse({"session": request.scope["session"]})  # no load, no methods

    await http.post("/update_session", json={"a": 1})
    assert (await http.get("/unloaded_view")).json() == {"session": {"a": 1}}
    app = make_app(https_only=False)
    app.router.routes.append(Route("/direct", direct))
    async with client(app) as other:
        other.cookies = http.cookies
        assert (await other.get("/direct")).json() == {"session": {"a": 1}}


async def test_loading_up_front_costs_one_read_and_no_cookie_when_untouched(
    http: httpx.AsyncClient, counting: CountingBackend
) -> None:
    await http.post("/update_session", json={"a": 1})
    counting.reset()
    response = await http.get("/no_session")
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers
    assert dict(counting.calls) == {"get": 1}
    http.cookies.clear()
    counting.reset()
    await http.get("/no_session")
    assert counting.total == 0  # no session cookie, nothing to load


@pytest.fixture
async def lazy(make_app: MakeApp, counting: CountingBackend) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with autoload=False, holding a stored session, counts reset."""
    async with client(make_app(https_only=False, autoload=False)) as http:
        await http.post("/update_session", json={"a": 1})
        counting.reset()
        yield http


async def test_lazy_mode_costs_untouched_sessions_no_store_call(
    lazy: httpx.AsyncClient, counting: CountingBackend
) -> None:
    response = await lazy.get("/no_session")
    assert "set-cookie" not in response.headers
    assert counting.total == 0


async def test_lazy_mode_async_use_before_loading_names_both_fixes(
    lazy: httpx.AsyncClient,
) -> None:
    with pytest.raises(SessionNotLoaded, match=r"await load_session\(request\).*autoload") as e:
        await lazy.get("/unloaded_view")
    # Nothing unrelated printed above it: anyio's complaint is not chained.
    assert e.value.__cause__ is None
    assert e.value.__suppress_context__


async def test_lazy_mode_a_sync_endpoint_loads_on_first_use(
    lazy: httpx.AsyncClient, counting: CountingBackend
) -> None:
    assert (await lazy.get("/sync_view")).json() == {"session": {"a": 1}}
    assert counting.calls["get"] == 1


async def test_nested_in_place_edits_are_saved(http: httpx.AsyncClient) -> None:
    await http.post("/append", json={"item": "tea"})
    await http.post("/append", json={"item": "milk"})
    assert (await http.get("/view_session")).json() == {"session": {"items": ["tea", "milk"]}}


async def test_regenerate_session_moves_the_data_to_a_new_id(
    http: httpx.AsyncClient, store_records: StoreRecords
) -> None:
    await http.post("/update_session", json={"cart": ["tea"]})
    before = http.cookies["session"]
    await http.post("/login")
    assert http.cookies["session"] != before
    assert (await http.get("/view_session")).json() == {
        "session": {"cart": ["tea"], "user": "ada"}
    }
    assert len(await store_records()) == 1
    http.cookies.clear()
    http.cookies.set("session", before)
    assert (await http.get("/view_session")).json() == {"session": {}}


async def test_destroy_session_deletes_the_record_and_the_cookie(
    http: httpx.AsyncClient, store_records: StoreRecords
) -> None:
    await http.post("/login")
    response = await http.post("/logout")
    assert "expires=thu, 01 jan 1970 00:00:00 gmt" in attributes(response)
    assert await store_records() == {}
    assert (await http.get("/view_session")).json() == {"session": {}}


async def test_a_store_outage_is_a_503_when_loading_lazily_or_eagerly(
    make_app: MakeApp, counting: CountingBackend
) -> None:
    store = SwitchableBackend(counting)
    for autoload in (False, True):
        app = make_app(backend=store, https_only=False, autoload=autoload)
        first = await call(app, "/login", "POST")
        headers = cookie_header(first.cookie() or "")
        store.down = {"get"}
        for path in ("/view_session", "/sync_view"):
            response = await call(app, path, headers=headers)
            assert response.status == 503
            assert response.header("retry-after") == "1"
        store.down = set()


async def test_the_anonymous_policy_serves_an_empty_session(
    make_app: MakeApp, counting: CountingBackend
) -> None:
    store = SwitchableBackend(counting)
    app = make_app(backend=store, https_only=False, on_backend_error="anonymous")
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    store.down = {"get"}
    response = await call(app, "/view_session", headers=headers)
    assert (response.status, response.body) == (200, b'{"session":{}}')


async def test_websocket_routes_can_read_the_session() -> None:
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(dict(websocket.session))
        await websocket.close()

    app = Starlette(
        routes=[*ROUTES, WebSocketRoute("/ws", ws)],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=SECRET,
                backend=MemoryBackend(),
                https_only=False,
                autoload=True,
            )
        ],
    )

    def run() -> None:
        with TestClient(app) as test_client:
            test_client.post("/update_session", json={"a": 1})
            with test_client.websocket_connect("/ws") as connection:
                assert connection.receive_json() == {"a": 1}

    import anyio.to_thread

    await anyio.to_thread.run_sync(run)


async def test_data_that_is_not_json_fails_loudly(make_app: MakeApp) -> None:
    async def bad(request: Request) -> JSONResponse:
        await load_session(request)
        request.session["when"] = object()
        return JSONResponse({})

    app = make_app(https_only=False)
    app.router.routes.append(Route("/bad", bad))
    with pytest.raises(TypeError, match="not JSON serializable"):
        await call(app, "/bad")


def test_session_reads_on_a_loaded_session_behave_as_a_dict() -> None:
    session = Session({"a": 1, "b": [2]})
    assert session["a"] == 1
    assert session.get("missing", 3) == 3
    assert "a" in session
    assert list(session) == ["a", "b"]
    assert len(session) == 2
    assert list(session.keys()) == ["a", "b"]
    assert list(session.values()) == [1, [2]]
    assert list(session.items()) == [("a", 1), ("b", [2])]
    copy = session.copy()
    assert copy == {"a": 1, "b": [2]}
    assert type(copy) is dict
    assert repr(session) == "Session({'a': 1, 'b': [2]})"
    assert not session.modified


async def test_every_read_of_an_unloaded_session_refuses_on_the_event_loop() -> None:
    session = Session()

    async def never() -> None:
        raise AssertionError("not called on the event loop")  # pragma: no cover

    session._loader = never
    assert repr(session) == "Session(<not loaded>)"
    reads: list[Callable[[], object]] = [
        lambda: session["a"],
        lambda: session.get("a"),
        lambda: "a" in session,
        lambda: list(session),
        lambda: len(session),
        session.keys,
        session.values,
        session.items,
        session.copy,
        session.mark_accessed,
        lambda: session.pop("a", None),
        lambda: session.setdefault("a", 1),
    ]
    for read in reads:
        with pytest.raises(SessionNotLoaded):
            read()


async def test_load_session_without_the_middleware_names_it() -> None:
    from starlette.requests import HTTPConnection

    from fastapi_session_deps import SessionError

    from .helpers import http_scope

    with pytest.raises(SessionError, match=r"add_middleware\(SessionMiddleware"):
        await load_session(HTTPConnection(http_scope()))


async def test_a_store_outage_after_the_response_started_is_not_hidden(
    make_app: MakeApp, counting: CountingBackend
) -> None:
    from starlette.responses import StreamingResponse

    store = SwitchableBackend(counting)

    async def stream(request: Request) -> StreamingResponse:
        def body() -> Any:  # a sync generator: runs in a worker thread
            yield b"start;"
            yield str(dict(request.session)).encode()  # loads only now, after the start

        return StreamingResponse(body())

    app = make_app(backend=store, https_only=False, autoload=False)
    app.router.routes.append(Route("/stream", stream))
    headers = cookie_header((await call(app, "/login", "POST")).cookie() or "")
    store.down = {"get"}
    with pytest.raises(Exception) as caught:  # noqa: PT011 - wrapped by the task group
        await call(app, "/stream", headers=headers)
    assert "BackendUnavailable" in repr(caught.value) or "store is down" in str(caught.value)


async def test_a_websocket_with_autoload_is_closed_1013_when_the_store_is_down() -> None:
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket) -> None:  # pragma: no cover - refused before this
        await websocket.accept()

    store = SwitchableBackend(MemoryBackend())
    app = Starlette(
        routes=[*ROUTES, WebSocketRoute("/ws", ws)],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=SECRET,
                backend=store,
                https_only=False,
                autoload=True,
            )
        ],
    )

    def run() -> int | None:
        with TestClient(app) as test_client:
            test_client.post("/update_session", json={"a": 1})
            store.down = {"get"}
            connection = test_client.websocket_connect("/ws")
            try:
                connection.__enter__()
            except Exception as exc:
                return getattr(exc, "code", None)
        return None  # pragma: no cover

    import anyio.to_thread

    assert await anyio.to_thread.run_sync(run) == 1013


async def test_set_cookie_is_spelled_exactly_as_starlette_spells_it(make_app: MakeApp) -> None:
    # Apps' own tests assert on this text, so it is Starlette's to the character.
    app = make_app(domain=".example.com", same_site="none", partitioned=True, max_age=600)
    async with client(app, "https://testserver") as https:
        set_header = (await https.post("/update_session", json={"a": 1})).headers["set-cookie"]
        token = set_header.split(";")[0].removeprefix("session=")
        https.cookies.set("session", token)  # the jar keeps .example.com cookies to itself
        clear_header = (await https.post("/clear_session")).headers["set-cookie"]
    assert set_header == (
        f"session={token}; path=/; Max-Age=600; httponly; samesite=none; secure; "
        "domain=.example.com; partitioned"
    )
    assert clear_header == (
        "session=null; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; httponly; "
        "samesite=none; secure; domain=.example.com; partitioned"
    )
