"""Concurrency policies in process: the lock policy serialises, read-only routes bypass it."""

import logging
import time
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends

from fastapi_session_deps import (
    ConfigurationError,
    SessionError,
    SessionManager,
)
from fastapi_session_deps.signing import TokenSigner, store_key

from .helpers import (
    Clock,
    CountingBackend,
    NoLocksBackend,
    SwitchableBackend,
    call,
    cookie_header,
)
from .support import AppSession, ManagerFactory, build_app
from .test_manager import app_with_a_slow_route, session_id_of

pytestmark = pytest.mark.anyio


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_lock_policy_runs_requests_on_one_session_one_after_the_other(
    make_manager: ManagerFactory,
) -> None:
    sessions = make_manager(concurrency="lock")
    app, loaded, release = app_with_a_slow_route(sessions)
    async with client(app) as http:
        await http.post("/login")
        async with anyio.create_task_group() as group:
            group.start_soon(http.post, "/slow-incr")
            await loaded.wait()
            with anyio.move_on_after(0.2) as waited:
                await http.post("/incr")  # must wait for the slow request's lock
            assert waited.cancelled_caught
            release.set()
            assert (await http.post("/incr")).json() == {"counter": 2}
        assert (await http.get("/read")).json()["counter"] == 2  # neither was lost


async def test_a_lock_held_longer_than_lock_timeout_is_a_503(
    make_manager: ManagerFactory,
) -> None:
    sessions = make_manager(concurrency="lock", lock_timeout=0.05)
    app, loaded, release = app_with_a_slow_route(sessions)
    async with client(app) as http:
        await http.post("/login")
        async with anyio.create_task_group() as group:
            group.start_soon(http.post, "/slow-incr")
            await loaded.wait()
            busy = await http.post("/incr")
            release.set()
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json() == {
            "detail": "The session is busy with another request; please retry shortly."
        }


async def test_read_only_routes_never_wait_for_the_lock(make_manager: ManagerFactory) -> None:
    sessions = make_manager(concurrency="lock", lock_timeout=5)
    app, loaded, release = app_with_a_slow_route(sessions)

    @app.get("/peek")
    async def peek(
        session: Annotated[AppSession, Depends(sessions.get_session_readonly)],
    ) -> int:
        return session.counter

    checked = sessions.verifier(lambda s: s.user_id is not None, readonly=True)

    @app.get("/peek-checked")
    async def peek_checked(session: Annotated[AppSession, Depends(checked)]) -> int:
        return session.counter

    async with client(app) as http:
        await http.post("/login")
        async with anyio.create_task_group() as group:
            group.start_soon(http.post, "/slow-incr")
            await loaded.wait()
            started = time.monotonic()
            assert (await http.get("/peek")).json() == 0
            assert (await http.get("/peek-checked")).json() == 0
            assert time.monotonic() - started < 1  # answered while the lock is held
            release.set()


async def test_a_change_to_a_read_only_session_is_dropped_with_a_warning(
    make_manager: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = make_manager()
    app = build_app(sessions)

    @app.get("/peek-unchanged")
    async def peek_unchanged(
        session: Annotated[AppSession, Depends(sessions.get_session_readonly)],
    ) -> int:
        return session.counter

    @app.post("/sneaky")
    async def sneaky(
        session: Annotated[AppSession, Depends(sessions.get_session_readonly)],
    ) -> None:
        session.counter = 99

    async with client(app) as http:
        await http.post("/login")
        with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
            response = await http.post("/sneaky")
        assert "set-cookie" not in response.headers
        assert "read-only session was changed" in caplog.text
        assert (await http.get("/read")).json()["counter"] == 0
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
            await http.get("/peek-unchanged")
        assert caplog.records == []  # reading alone is not a change


@pytest.mark.parametrize("policy", ["merge", "lock"])
async def test_read_only_then_writable_in_one_request(
    make_manager: ManagerFactory, policy: str
) -> None:
    sessions = make_manager(concurrency=policy)
    app = build_app(sessions)

    @app.post("/mixed")
    async def mixed(
        first: Annotated[AppSession, Depends(sessions.get_session_readonly)],
        second: Annotated[AppSession, Depends(sessions.get_session)],
    ) -> None:
        second.counter += 1

    async with client(app) as http:
        await http.post("/login")
        if policy == "merge":  # nothing to lock: the session simply becomes writable
            assert (await http.post("/mixed")).status_code == 200
            assert (await http.get("/read")).json()["counter"] == 1
        else:  # it was read without its lock, so it cannot be written safely
            headers = cookie_header(http.cookies["session"])
            with pytest.raises(SessionError, match="loaded read-only"):
                await call(app, "/mixed", "POST", headers=headers)


@pytest.mark.parametrize("path", ["/crash", "/fail"])
async def test_the_lock_is_released_when_the_route_fails(
    make_manager: ManagerFactory, counting: CountingBackend, path: str
) -> None:
    sessions = make_manager(concurrency="lock", lock_timeout=0.5)
    app = build_app(sessions)
    async with client(app) as http:
        await http.post("/login")
        assert (await http.post(path)).status_code == 500
        assert (await http.post("/incr")).json() == {"counter": 1}  # no wait, no 503
    assert counting.calls["acquire_lock"] == counting.calls["release_lock"] == 2


@pytest.mark.parametrize("failing", ["get", "update"])
async def test_the_lock_is_released_when_a_store_call_fails(
    make_manager: ManagerFactory, counting: CountingBackend, failing: str
) -> None:
    store = SwitchableBackend(counting)
    sessions = make_manager(backend=store, concurrency="lock", lock_timeout=0.5)
    app = build_app(sessions)
    token = (await call(app, "/login", "POST")).cookie() or ""
    store.down = {failing}
    assert (await call(app, "/incr", "POST", headers=cookie_header(token))).status == 503
    store.down = set()
    assert (await call(app, "/incr", "POST", headers=cookie_header(token))).status == 200
    assert counting.calls["acquire_lock"] == counting.calls["release_lock"] == 2


async def test_a_failed_release_is_retried_when_the_session_is_next_used(
    make_manager: ManagerFactory, counting: CountingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    store = SwitchableBackend(counting)
    sessions = make_manager(backend=store, concurrency="lock", lock_timeout=0.2)
    app = build_app(sessions)
    token = (await call(app, "/login", "POST")).cookie() or ""
    store.down = {"release_lock"}
    response = await call(app, "/incr", "POST", headers=cookie_header(token))
    assert response.status == 200  # the write landed; only the unlock failed
    assert "retried on next use" in caplog.text
    store.down = set()
    counting.reset()
    # Without the retry the lock would still be held: a wait of lock_timeout, then a 503.
    assert (await call(app, "/incr", "POST", headers=cookie_header(token))).status == 200
    assert counting.calls["release_lock"] == 2  # the left-over lock, then this request's


async def test_the_lock_policy_needs_a_backend_with_locks(make_manager: ManagerFactory) -> None:
    with pytest.raises(ConfigurationError, match="needs a backend with session locks"):
        make_manager(backend=NoLocksBackend(), concurrency="lock")


async def test_the_lock_covers_regenerate_and_is_released_after_it(
    make_manager: ManagerFactory, counting: CountingBackend
) -> None:
    sessions = make_manager(concurrency="lock", lock_timeout=0.5)
    app = build_app(sessions)
    async with client(app) as http:
        await http.post("/incr")
        old = store_key(session_id_of(http.cookies["session"]))
        await http.post("/login")  # regenerates: a new id, the old record gone
        await http.post("/incr")
        assert (await http.get("/read")).json()["counter"] == 2
    assert await counting.inner.get(old) is None
    assert counting.calls["acquire_lock"] == counting.calls["release_lock"]


async def test_requests_on_other_sessions_are_not_held_up(make_manager: ManagerFactory) -> None:
    sessions: SessionManager[AppSession] = make_manager(concurrency="lock", lock_timeout=0.2)
    app, loaded, release = app_with_a_slow_route(sessions)
    async with client(app) as first, client(app) as second:
        await first.post("/login")
        await second.post("/login")
        async with anyio.create_task_group() as group:
            group.start_soon(first.post, "/slow-incr")
            await loaded.wait()
            assert (await second.post("/incr")).json() == {"counter": 1}
            release.set()


async def test_the_lock_is_released_when_the_record_is_missing(
    make_manager: ManagerFactory, counting: CountingBackend, clock: Clock
) -> None:
    from fastapi_session_deps.signing import TokenSigner, new_session_id

    from .helpers import SECRET

    app = build_app(make_manager(concurrency="lock", lock_timeout=0.5))
    unknown = TokenSigner(SECRET, namespace="session").sign(new_session_id(), int(clock()))
    assert (await call(app, "/incr", "POST", headers=cookie_header(unknown))).status == 200
    assert counting.calls["acquire_lock"] == counting.calls["release_lock"] == 1


async def test_a_writable_then_read_only_dependency_share_the_writable_session(
    make_manager: ManagerFactory,
) -> None:
    sessions = make_manager(concurrency="lock")
    app = build_app(sessions)

    @app.post("/both")
    async def both(
        writable: Annotated[AppSession, Depends(sessions.get_session)],
        readonly: Annotated[AppSession, Depends(sessions.get_session_readonly)],
    ) -> bool:
        writable.counter += 1
        return writable is readonly

    async with client(app) as http:
        await http.post("/login")
        assert (await http.post("/both")).json() is True
        assert (await http.get("/read")).json()["counter"] == 1


async def test_autoload_answers_503_when_the_session_stays_locked(
    counting: CountingBackend,
) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from fastapi_session_deps import SessionLocks, SessionMiddleware

    from .helpers import SECRET

    async def write(request: Request) -> JSONResponse:
        request.session["n"] = 1
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/write", write, methods=["POST"])],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=SECRET,
                backend=counting,
                https_only=False,
                autoload=True,
                concurrency="lock",
                lock_timeout=0.05,
            )
        ],
    )
    token = (await call(app, "/write", "POST")).cookie() or ""
    verified = TokenSigner(SECRET, namespace="session").verify(token)
    assert verified is not None
    assert isinstance(counting.inner, SessionLocks)
    key = store_key(verified.session_id)
    assert await counting.inner.acquire_lock(key, "someone-else", ttl=30, wait=1)
    busy = await call(app, "/write", "POST", headers=cookie_header(token))
    assert busy.status == 503
    assert b"busy" in busy.body
    await counting.inner.release_lock(key, "someone-else")


def test_a_websocket_that_took_the_lock_releases_it_when_it_ends() -> None:
    # Nothing is committed from a WebSocket route, so its lock is released when it closes.
    from fastapi import WebSocket
    from fastapi.testclient import TestClient

    from fastapi_session_deps import CookieFrontend, MemoryBackend, SessionManager

    from .helpers import SECRET

    manager = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=MemoryBackend(),
        concurrency="lock",
        lock_timeout=0.2,
    )
    app = build_app(manager)

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket, session: Annotated[AppSession, Depends(manager.get_session)]
    ) -> None:
        await websocket.accept()
        await websocket.send_json({"counter": session.counter})
        await websocket.close()

    with TestClient(app) as client:
        client.post("/login")
        with client.websocket_connect("/ws") as connection:
            assert connection.receive_json() == {"counter": 0}
        assert client.post("/incr").status_code == 200  # not 503: the lock is free
