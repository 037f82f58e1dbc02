"""Health: `ping` and the readiness route, on every store, and with the store away."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_session_deps import (
    BackendUnavailable,
    CookieFrontend,
    MemoryBackend,
    RedisBackend,
    SessionManager,
    health_router,
)
from fastapi_session_deps.backends.base import PING_KEY, Backend
from fastapi_session_deps.health import ping

from .helpers import SECRET, Clock, SwitchableBackend
from .redis_servers import RedisServer
from .support import WITH_THE_SERVICE, AppSession, ManagerFactory, each_store, manager_factory

pytestmark = pytest.mark.anyio

backend = pytest.fixture(params=WITH_THE_SERVICE, name="backend")(each_store)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_every_store_answers_a_ping_and_the_probe(backend: Backend, clock: Clock) -> None:
    sessions = manager_factory(backend, clock)()
    took = await sessions.ping()
    assert 0 <= took < 5
    assert await backend.get(PING_KEY) is None  # reading it left nothing behind
    app = FastAPI()
    app.include_router(health_router(sessions))
    async with client_for(app) as client:
        answer = await client.get("/health/sessions")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["store"] == type(backend).__name__
    assert body["latency_ms"] >= 0
    assert answer.headers["cache-control"] == "no-store"
    assert "/health/sessions" not in app.openapi()["paths"]


async def test_a_store_that_fails_is_a_503_and_a_log_line(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = SwitchableBackend(MemoryBackend(clock=clock))
    app = FastAPI()
    app.include_router(health_router(store, path="/ready"))
    async with client_for(app) as client:
        assert (await client.get("/ready")).status_code == 200
        store.down.add("get")
        answer = await client.get("/ready")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "store": "SwitchableBackend",
        "error": "BackendUnavailable",
    }
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "health_failed"]
    assert record.store == "SwitchableBackend"  # type: ignore[attr-defined]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_paused_redis_fails_the_ping_within_its_timeout(own_redis: RedisServer) -> None:
    store = RedisBackend.from_url(own_redis.url, timeout=0.3, socket_connect_timeout=0.3)
    sessions = SessionManager(AppSession, frontend=CookieFrontend(SECRET), backend=store)
    try:
        await sessions.ping()
        own_redis.pause()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await sessions.ping()
        assert time.monotonic() - started < 0.3 * 2  # within the timeout, not a hang
    finally:
        own_redis.resume()
        await store.aclose()
    recovered = RedisBackend.from_url(own_redis.url)
    assert isinstance(await ping(recovered), float)
    await recovered.aclose()


async def test_the_probe_answers_for_a_manager_on_its_own_path(on_memory: Any) -> None:
    sessions: SessionManager[AppSession] = on_memory()
    app = FastAPI()
    app.include_router(health_router(sessions, path="/ready"))
    async with client_for(app) as client:
        assert (await client.get("/ready")).json()["store"] == "MemoryBackend"


@pytest.fixture
def on_memory(clock: Clock) -> ManagerFactory:
    return manager_factory(MemoryBackend(clock=clock), clock)
