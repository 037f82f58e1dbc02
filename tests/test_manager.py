"""The typed API end to end: a real FastAPI app, driven over ASGI with httpx."""

import logging
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    MemoryBackend,
    MissingMiddlewareError,
    SessionError,
    SessionManager,
)
from fastapi_session_deps.signing import TokenSigner, new_session_id, store_key

from .helpers import OLD_SECRET, SECRET, CountingBackend
from .support import AppSession, ManagerFactory, PassTime, StoreRecords, build_app

pytestmark = pytest.mark.anyio

SIGNER = TokenSigner(SECRET, namespace="session")


def session_id_of(token: str | None) -> str:
    assert token
    verified = SIGNER.verify(token)
    assert verified is not None
    return verified.session_id


def max_age_of(response: httpx.Response) -> int:
    header = response.headers["set-cookie"]
    attributes = dict(
        part.strip().lower().split("=", 1) for part in header.split(";")[1:] if "=" in part
    )
    return int(attributes["max-age"])


async def stored(counting: CountingBackend, client: httpx.AsyncClient) -> dict[str, bytes] | None:
    return await counting.inner.get(store_key(session_id_of(client.cookies.get("session"))))


# -- persistence --------------------------------------------------------------------------


async def test_a_change_is_saved_and_read_back(client: httpx.AsyncClient) -> None:
    assert (await client.post("/incr")).json() == {"counter": 1}
    assert (await client.post("/incr")).json() == {"counter": 2}
    assert (await client.get("/read")).json()["counter"] == 2


async def test_in_place_edits_are_saved(client: httpx.AsyncClient) -> None:
    await client.post("/cart", params={"item": "book"})
    response = await client.post("/cart", params={"item": "pen"})
    assert response.json() == ["book", "pen"]
    assert (await client.get("/read")).json()["cart"] == ["book", "pen"]


async def test_a_route_without_the_session_makes_no_store_call_and_sets_no_cookie(
    client: httpx.AsyncClient, counting: CountingBackend
) -> None:
    await client.post("/login")
    counting.reset()
    for path in ("/noop", "/request-only"):
        response = await client.get(path)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
        assert "vary" not in response.headers
    assert counting.total == 0


async def test_an_anonymous_visitor_who_changes_nothing_gets_no_cookie_and_no_record(
    client: httpx.AsyncClient, counting: CountingBackend, store_records: StoreRecords
) -> None:
    for _ in range(3):
        response = await client.get("/read")
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
    assert counting.calls["set"] == counting.calls["update"] == 0
    assert await store_records() == {}


async def test_an_unchanged_session_is_not_written_back(
    client: httpx.AsyncClient, counting: CountingBackend
) -> None:
    await client.post("/login")
    counting.reset()
    for _ in range(3):
        response = await client.get("/read")
        assert response.json()["user_id"] == 1
        assert "set-cookie" not in response.headers
    assert counting.calls == {"get": 3}
    assert counting.get_ttls == [None, None, None]  # expiry not due yet


async def test_only_the_changed_fields_are_written(
    client: httpx.AsyncClient, counting: CountingBackend
) -> None:
    await client.post("/login")
    record = await stored(counting, client)
    assert record is not None
    # Plant a value in another field behind the app's back: a field-level save keeps it.
    await counting.inner.update(
        store_key(session_id_of(client.cookies.get("session"))), {"cart": b'["x"]'}, ttl=60
    )
    await client.post("/incr")
    assert (await client.get("/read")).json()["cart"] == ["x"]


@pytest.mark.parametrize("kind", ["dict", "model", "json", "streaming", "redirect"])
async def test_the_cookie_is_set_whatever_the_route_returns(
    manager: SessionManager[AppSession], kind: str
) -> None:
    app = FastAPI()
    app.add_middleware(manager.middleware)

    class Out(BaseModel):
        ok: bool

    @app.post("/write")
    async def write(session: Annotated[AppSession, Depends(manager.get_session)]) -> Any:
        session.counter = 42
        if kind == "dict":
            return {"ok": True}
        if kind == "model":
            return Out(ok=True)
        if kind == "json":
            return JSONResponse({"ok": True})
        if kind == "streaming":
            return StreamingResponse(iter([b"a", b"b"]))
        return RedirectResponse("/elsewhere", status_code=303)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/write")
        assert response.headers["set-cookie"].startswith("session=")
        assert response.headers["vary"] == "Cookie"
        record = await manager.backend.get(store_key(session_id_of(client.cookies["session"])))
    assert record is not None
    assert record["counter"] == b"42"


async def test_a_5xx_response_saves_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/incr")
    response = await client.post("/fail", params={"status": 503})
    assert response.status_code == 503
    assert "set-cookie" not in response.headers
    assert (await client.get("/read")).json()["counter"] == 1


async def test_an_unhandled_exception_saves_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/incr")
    response = await client.post("/crash")
    assert response.status_code == 500
    assert "set-cookie" not in response.headers
    assert (await client.get("/read")).json()["counter"] == 1


async def test_a_4xx_response_saves_as_usual(client: httpx.AsyncClient) -> None:
    response = await client.post("/fail", params={"status": 401})
    assert response.status_code == 401
    assert response.headers["set-cookie"].startswith("session=")
    assert (await client.get("/read")).json()["counter"] == 100


async def test_a_response_that_read_the_session_varies_on_cookie(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/read")).headers["vary"] == "Cookie"
    assert (await client.get("/me")).headers["vary"] == "Cookie"  # a 401 too


async def test_every_dependency_of_one_request_returns_the_same_object(
    manager: SessionManager[AppSession],
) -> None:
    app = FastAPI()
    app.add_middleware(manager.middleware)
    seen: list[bool] = []
    always = manager.verifier(lambda s: True)

    @app.post("/login")
    async def login(session: Annotated[AppSession, Depends(manager.get_session)]) -> None:
        session.user_id = 5

    @app.get("/same")
    async def same(
        a: Annotated[AppSession, Depends(manager.get_session)],
        b: Annotated[AppSession, Depends(manager.require_session)],
        c: Annotated[AppSession, Depends(always)],
    ) -> None:
        seen.append(a is b is c)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        assert (await client.get("/same")).status_code == 200
    assert seen == [True]


def app_with_a_slow_route(
    sessions: SessionManager[AppSession],
) -> tuple[FastAPI, anyio.Event, anyio.Event]:
    """The test app plus ``/slow-incr``, which loads, sets ``loaded`` and waits for ``release``."""
    app = build_app(sessions)
    loaded = anyio.Event()
    release = anyio.Event()

    @app.post("/slow-incr")
    async def slow_incr(session: Annotated[AppSession, Depends(sessions.get_session)]) -> None:
        loaded.set()
        await release.wait()
        session.counter += 1

    return app, loaded, release


async def test_concurrent_requests_changing_different_fields_both_persist(
    manager: SessionManager[AppSession],
) -> None:
    app, loaded, release = app_with_a_slow_route(manager)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        async with anyio.create_task_group() as group:
            group.start_soon(client.post, "/slow-incr")
            await loaded.wait()
            # Loads, changes and saves while the first request still holds its copy.
            await client.post("/cart", params={"item": "fast"})
            release.set()
        record = await manager.backend.get(store_key(session_id_of(client.cookies["session"])))
    assert record is not None
    assert (record["counter"], record["cart"], record["user_id"]) == (b"1", b'["fast"]', b"1")


async def test_a_session_destroyed_meanwhile_is_not_resurrected(
    manager: SessionManager[AppSession], counting: CountingBackend, store_records: StoreRecords
) -> None:
    app, loaded, release = app_with_a_slow_route(manager)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        key = store_key(session_id_of(client.cookies["session"]))
        responses: list[httpx.Response] = []

        async def slow() -> None:
            responses.append(await client.post("/slow-incr"))

        async with anyio.create_task_group() as group:
            group.start_soon(slow)
            await loaded.wait()
            await client.post("/logout")
            release.set()
    assert await counting.inner.get(key) is None
    assert await store_records() == {}
    # The late request's change is dropped, and it leaves the cookie alone: had the other
    # request been a log-in, the browser would already hold the new id (hardening row 9).
    assert "set-cookie" not in responses[0].headers


# -- expiry -------------------------------------------------------------------------------


async def test_idle_timeout_ends_an_untouched_session(
    client: httpx.AsyncClient, pass_time: PassTime
) -> None:
    await client.post("/login")
    await pass_time(1799)
    assert (await client.get("/me")).status_code == 200
    await pass_time(1800)
    response = await client.get("/me")
    assert response.status_code == 401


async def test_activity_slides_the_idle_timeout(
    client: httpx.AsyncClient, pass_time: PassTime, counting: CountingBackend
) -> None:
    await client.post("/login")
    first_token = client.cookies["session"]
    for _ in range(5):  # 5 x 1000 s: far past one idle timeout, never idle for one
        await pass_time(1000)
        counting.reset()
        response = await client.get("/me")
        assert response.status_code == 200
        assert counting.get_ttls == [1800]  # the record's expiry slid with the read
        assert max_age_of(response) == 1800  # and so did the cookie's
    assert session_id_of(client.cookies["session"]) == session_id_of(first_token)


async def test_the_cookie_and_expiry_are_renewed_only_when_due(
    client: httpx.AsyncClient, pass_time: PassTime, counting: CountingBackend
) -> None:
    await client.post("/login")
    counting.reset()
    await pass_time(179)  # under a tenth of the idle timeout
    assert "set-cookie" not in (await client.get("/me")).headers
    await pass_time(1)
    assert "set-cookie" in (await client.get("/me")).headers
    await pass_time(1)
    assert "set-cookie" not in (await client.get("/me")).headers  # renewed just now
    assert counting.get_ttls == [None, 1800, None]
    assert counting.calls["set"] == counting.calls["update"] == 0


async def test_absolute_timeout_ends_even_an_active_session(
    make_manager: ManagerFactory, pass_time: PassTime, counting: CountingBackend
) -> None:
    app = build_app(make_manager(idle_timeout=1800, absolute_timeout=3600))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        key = store_key(session_id_of(client.cookies["session"]))
        await pass_time(1000)
        assert (await client.get("/me")).status_code == 200
        await pass_time(1000)
        response = await client.post("/incr")
        assert max_age_of(response) == 1600  # the cookie never outlives the session
        await pass_time(1000)
        assert (await client.get("/me")).status_code == 200
        await pass_time(600)
        assert (await client.get("/me")).status_code == 401
    assert await counting.inner.get(key) is None


async def test_a_session_that_runs_out_during_a_request_is_ended(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    sessions = make_manager(idle_timeout=100, absolute_timeout=100)
    app = FastAPI()
    app.add_middleware(sessions.middleware)

    @app.post("/login")
    async def login(session: Annotated[AppSession, Depends(sessions.get_session)]) -> None:
        session.user_id = 1

    @app.post("/slow")
    async def slow(session: Annotated[AppSession, Depends(sessions.get_session)]) -> None:
        await pass_time(50)  # the route takes the session past its absolute limit
        session.counter += 1

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.post("/login")
        key = store_key(session_id_of(client.cookies["session"]))
        await pass_time(60)
        response = await client.post("/slow")
    assert 'session=""' in response.headers["set-cookie"]
    assert await sessions.backend.get(key) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idle_timeout": 3600, "absolute_timeout": 60}, "shorter than idle_timeout"),
        ({"idle_timeout": 0}, "idle_timeout must be positive"),
        ({"absolute_timeout": -1}, "absolute_timeout must be positive"),
        ({"concurrency": "optimistic"}, "concurrency="),
        ({"on_backend_error": "ignore"}, "on_backend_error="),
        ({"frontend": object()}, "frontend must be a Frontend"),
        ({"backend": {}}, "backend must be a Backend"),
    ],
)
async def test_misconfiguration_fails_at_construction(
    make_manager: ManagerFactory, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_manager(**options)


async def test_timeouts_accept_timedeltas(make_manager: ManagerFactory) -> None:
    from datetime import timedelta

    sessions = make_manager(idle_timeout=timedelta(minutes=5), absolute_timeout=timedelta(hours=1))
    assert (sessions.idle_timeout, sessions.absolute_timeout) == (300, 3600)
    assert "idle_timeout=300" in repr(sessions)


# -- security -----------------------------------------------------------------------------


async def test_the_store_holds_a_hash_of_the_id_never_the_id(
    client: httpx.AsyncClient, store_records: StoreRecords
) -> None:
    await client.post("/login")
    session_id = session_id_of(client.cookies["session"])
    records = await store_records()
    [raw_key] = records
    assert store_key(session_id) in raw_key
    assert session_id not in raw_key
    assert session_id.encode() not in b"".join(records[raw_key].values())
    assert records[raw_key]["user_id"] == b"1"


async def test_an_unknown_id_is_never_adopted(client: httpx.AsyncClient) -> None:
    planted = new_session_id()
    client.cookies.set("session", SIGNER.sign(planted, 1_800_000_000))
    response = await client.post("/incr")
    issued = session_id_of(response.cookies["session"])
    assert issued != planted


async def test_rotation_accepts_old_cookies_and_re_signs_them(
    make_manager: ManagerFactory, counting: CountingBackend
) -> None:
    before = build_app(make_manager(frontend=CookieFrontend([OLD_SECRET], secure=False)))
    after = build_app(make_manager(frontend=CookieFrontend([SECRET, OLD_SECRET], secure=False)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=before), base_url="http://testserver"
    ) as client:
        await client.post("/login", params={"user_id": 9})
        old_token = client.cookies["session"]
    assert SIGNER.verify(old_token) is None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=after), base_url="http://testserver"
    ) as client:
        client.cookies.clear()
        client.cookies.set("session", old_token)
        response = await client.get("/me")
        assert response.json()["user_id"] == 9
        new_token = response.cookies["session"]
        old = TokenSigner(OLD_SECRET, namespace="session").verify(old_token)
        assert old is not None
        assert session_id_of(new_token) == old.session_id
        assert "set-cookie" not in (await client.get("/me")).headers  # settled on the new key


async def test_regenerate_changes_the_id_keeps_the_data_and_deletes_the_old_record(
    client: httpx.AsyncClient, counting: CountingBackend
) -> None:
    await client.post("/cart", params={"item": "book"})
    old_token = client.cookies["session"]
    response = await client.post("/login", params={"user_id": 3})
    new_token = response.cookies["session"]
    assert session_id_of(new_token) != session_id_of(old_token)
    assert await counting.inner.get(store_key(session_id_of(old_token))) is None
    assert (await client.get("/me")).json()["cart"] == ["book"]
    client.cookies.clear()  # the browser's jar holds one cookie of a name: the new one
    client.cookies.set("session", old_token)
    assert (await client.get("/me")).status_code == 401


async def test_regenerate_keeps_the_creation_time(
    make_manager: ManagerFactory, pass_time: PassTime
) -> None:
    app = build_app(make_manager(idle_timeout=1800, absolute_timeout=3600))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        await client.post("/incr")
        await pass_time(1500)
        assert (await client.get("/read")).json()["counter"] == 1  # keeps it from idling out
        await pass_time(1500)
        response = await client.post("/login")
        assert (await client.get("/me")).json()["counter"] == 1  # same data, new id
        assert max_age_of(response) == 600
        await pass_time(601)
        assert (await client.get("/me")).status_code == 401


async def test_destroy_deletes_the_record_and_expires_the_cookie(
    client: httpx.AsyncClient, store_records: StoreRecords
) -> None:
    await client.post("/login")
    token = client.cookies["session"]
    response = await client.post("/logout")
    assert 'session=""' in response.headers["set-cookie"]
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert await store_records() == {}
    client.cookies.set("session", token)
    assert (await client.get("/me")).status_code == 401


async def test_data_stored_after_destroy_starts_a_new_session(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/login")
    old_id = session_id_of(client.cookies["session"])
    response = await client.post("/logout", params={"note": "bye"})
    assert session_id_of(response.cookies["session"]) != old_id
    data = (await client.get("/me")).json()
    assert data["prefs"] == {"note": "bye"}
    assert data["user_id"] is None


async def test_regenerate_and_destroy_refuse_a_foreign_object(
    manager: SessionManager[AppSession],
) -> None:
    with pytest.raises(SessionError, match="did not come from a session dependency"):
        await manager.regenerate(AppSession())
    with pytest.raises(SessionError, match="did not come from a session dependency"):
        await manager.destroy(AppSession())


# -- bad stored data ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        {"counter": b'"not a number"'},
        {"cart": b"{broken"},
        {"\x00created": b"yesterday"},
        {"\x00created": b"nan"},
        {"\x00created": b"inf"},
    ],
)
async def test_stored_data_that_no_longer_validates_is_no_session_logged_once(
    client: httpx.AsyncClient,
    counting: CountingBackend,
    caplog: pytest.LogCaptureFixture,
    damage: dict[str, bytes],
) -> None:
    await client.post("/login")
    key = store_key(session_id_of(client.cookies["session"]))
    await counting.inner.update(key, damage, ttl=60)
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        for _ in range(3):
            assert (await client.get("/me")).status_code == 401
    assert len([r for r in caplog.records if "undecodable" in r.message]) == 1
    assert await counting.inner.get(key) is None


async def test_a_record_without_creation_time_is_no_session(
    client: httpx.AsyncClient, counting: CountingBackend
) -> None:
    await client.post("/login")
    key = store_key(session_id_of(client.cookies["session"]))
    await counting.inner.update(key, {}, ["\x00created"], ttl=60)
    assert (await client.get("/me")).status_code == 401


# -- verifier and wiring ------------------------------------------------------------------


async def test_verifier_answers_401_403_or_a_chosen_status(
    manager: SessionManager[AppSession],
) -> None:
    app = FastAPI()
    app.add_middleware(manager.middleware)
    admin = manager.verifier(lambda s: s.user_id == 1)

    async def is_even(s: AppSession) -> bool:
        return s.counter % 2 == 0

    even = manager.verifier(is_even, status_code=409)

    @app.post("/login")
    async def login(
        session: Annotated[AppSession, Depends(manager.get_session)], user_id: int
    ) -> None:
        session.user_id = user_id

    @app.post("/incr")
    async def incr(session: Annotated[AppSession, Depends(manager.get_session)]) -> None:
        session.counter += 1

    @app.get("/admin")
    async def admin_page(session: Annotated[AppSession, Depends(admin)]) -> int | None:
        return session.user_id

    @app.get("/even")
    async def even_page(session: Annotated[AppSession, Depends(even)]) -> int:
        return session.counter

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/admin")).status_code == 401
        await client.post("/login", params={"user_id": 2})
        assert (await client.get("/admin")).status_code == 403
        await client.post("/login", params={"user_id": 1})
        assert (await client.get("/admin")).json() == 1
        assert (await client.get("/even")).json() == 0
        await client.post("/incr")
        assert (await client.get("/even")).status_code == 409


async def test_a_dependency_without_the_middleware_names_the_fix(
    manager: SessionManager[AppSession],
) -> None:
    app = FastAPI()

    @app.get("/read")
    async def read(session: Annotated[AppSession, Depends(manager.get_session)]) -> None:
        raise AssertionError("unreachable")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        fix = r"app\.add_middleware\(sessions\.middleware\)"
        with pytest.raises(MissingMiddlewareError, match=fix):
            await client.get("/read")


async def test_lifespan_closes_the_backend_and_refuses_to_start_without_middleware(
    manager: SessionManager[AppSession], counting: CountingBackend
) -> None:
    with_middleware = FastAPI()
    with_middleware.add_middleware(manager.middleware)
    async with manager.lifespan(with_middleware):
        pass
    assert counting.calls["aclose"] == 1
    fix = r"Add `app\.add_middleware\(sessions\.middleware\)` after creating the app"
    with pytest.raises(MissingMiddlewareError, match=fix):
        async with manager.lifespan(FastAPI()):
            pytest.fail("the app started without its session middleware")
    assert counting.calls["aclose"] == 2  # the store is closed all the same


async def test_an_app_without_the_middleware_does_not_start_under_uvicorns_lifespan() -> None:
    sessions = SessionManager(AppSession, frontend=CookieFrontend(SECRET), backend=MemoryBackend())
    app = FastAPI(lifespan=sessions.lifespan)
    messages: list[dict[str, object]] = []
    inbox = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, object]:
        return inbox.pop(0)

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    with pytest.raises(MissingMiddlewareError):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert messages[0]["type"] == "lifespan.startup.failed"
    assert "app.add_middleware(sessions.middleware)" in str(messages[0]["message"])


def test_a_websocket_route_reads_the_session() -> None:
    # TestClient runs the app on an event loop of its own: a memory store suits it.
    manager = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=MemoryBackend()
    )
    app = build_app(manager)

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket, session: Annotated[AppSession, Depends(manager.require_session)]
    ) -> None:
        await websocket.accept()
        await websocket.send_json({"user_id": session.user_id})
        await websocket.close()

    with TestClient(app) as client:
        refused_connection = client.websocket_connect("/ws")
        with pytest.raises(Exception) as refused:  # noqa: PT011 - the class varies by version
            refused_connection.__enter__()
        assert getattr(refused.value, "code", None) == 1008
        client.post("/login", params={"user_id": 4})
        with client.websocket_connect("/ws") as connection:
            assert connection.receive_json() == {"user_id": 4}


async def test_destroying_a_new_session_just_clears_the_cookie(
    client: httpx.AsyncClient, counting: CountingBackend
) -> None:
    response = await client.post("/logout")
    assert 'session=""' in response.headers["set-cookie"]
    assert counting.calls["delete"] == counting.calls["set"] == 0


async def test_the_dependencies_are_awaited_on_the_event_loop_with_the_connection_alone(
    manager: SessionManager[AppSession],
) -> None:
    # The public promise: FastAPI awaits them directly (no thread pool, no generator), and
    # they take nothing from the request but its connection.
    import inspect
    import threading

    threads: list[threading.Thread] = []

    def check(session: AppSession) -> bool:
        threads.append(threading.current_thread())
        return True

    verified = manager.verifier(check)
    for dependency in (manager.get_session, manager.require_session, verified):
        assert inspect.iscoroutinefunction(dependency.__call__)
        assert not inspect.isasyncgenfunction(dependency.__call__)
        assert list(inspect.signature(dependency).parameters) == ["connection"]
    app = build_app(manager)

    @app.get("/checked")
    async def checked(session: Annotated[AppSession, Depends(verified)]) -> None:
        pass

    from .helpers import call, cookie_header

    token = (await call(app, "/login", "POST")).cookie() or ""
    assert (await call(app, "/checked", headers=cookie_header(token))).status == 200
    assert threads == [threading.current_thread()]  # the event loop's, not a worker's
