"""Deleting expired records: by hand, on a schedule from the lifespan, and the loop itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from fastapi_session_deps import (
    ConfigurationError,
    CookieFrontend,
    MemoryBackend,
    RedisBackend,
    SessionManager,
    SessionMiddleware,
    SessionPolicy,
    SQLBackend,
)
from fastapi_session_deps._cleanup import clean_periodically

from .helpers import SECRET, Clock
from .support import AppSession, open_sql_store, sql_records

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sql(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLBackend]:
    async with open_sql_store(f"sqlite+aiosqlite:///{tmp_path}/s.db", clock) as backend:
        yield backend


class Sleeps:
    """A sleep the test steps through: each call is recorded and waits for `step()`."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._go = anyio.Event()
        self._waiting = anyio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self._waiting.set()
        await self._go.wait()
        self._go = anyio.Event()

    async def next_sleep(self) -> float:
        """Wait until the loop asks to sleep again, and return for how long."""
        await self._waiting.wait()
        self._waiting = anyio.Event()
        return self.asked[-1]

    def step(self) -> None:
        self._go.set()


async def test_the_loop_spreads_its_runs_and_deletes_each_time(
    sql: SQLBackend, clock: Clock
) -> None:
    sleeps = Sleeps()
    spreads = iter([0.25, 0.0, 1.0])
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: clean_periodically(sql, 100, sleep=sleeps, spread=lambda: next(spreads))
        )
        assert await sleeps.next_sleep() == 25  # a random part of the interval first
        await sql.set("old", {"a": b"1"}, ttl=10)
        await sql.set("live", {"a": b"1"}, ttl=1000)
        clock.advance(11)
        sleeps.step()
        assert await sleeps.next_sleep() == pytest.approx(90)  # then the interval, -10 %
        assert list(await sql_records(sql)) == ["live"]
        sleeps.step()
        assert await sleeps.next_sleep() == pytest.approx(110)  # ... or +10 %
        group.cancel_scope.cancel()


async def test_a_store_fault_is_logged_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = SQLBackend.from_url(f"sqlite+aiosqlite:///{tmp_path}/empty.db")  # no table
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING, logger="fastapi_session_deps"):
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: clean_periodically(missing, 60, sleep=sleeps))
            await sleeps.next_sleep()
            sleeps.step()
            await sleeps.next_sleep()  # it failed, and sleeps until the next run
            group.cancel_scope.cancel()
    assert "Expired sessions not deleted this time" in caplog.text
    await missing.aclose()


class CleanupSeen(logging.Handler):
    """Sets an event when a background cleanup reports its deletions."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "cleanup":
            self.seen.set()


@pytest.fixture
def cleanup_seen() -> Iterator[CleanupSeen]:
    handler = CleanupSeen()
    logger = logging.getLogger("fastapi_session_deps")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_the_managers_lifespan_cleans_on_schedule(
    sql: SQLBackend, clock: Clock, monkeypatch: pytest.MonkeyPatch, cleanup_seen: CleanupSeen
) -> None:
    monkeypatch.setattr("random.random", lambda: 0.0)  # the first run at once
    await sql.set("old", {"a": b"1"}, ttl=10)
    clock.advance(11)
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=sql,
        clock=clock,
        cleanup_interval=timedelta(minutes=10),
    )
    assert sessions.policy.cleanup_interval == 600
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)
    async with sessions.lifespan(app):
        with anyio.fail_after(10):
            await cleanup_seen.seen.wait()
    assert await sql_records(sql) == {}


async def test_the_drop_in_middleware_cleans_during_the_apps_lifespan(
    sql: SQLBackend, clock: Clock, monkeypatch: pytest.MonkeyPatch, cleanup_seen: CleanupSeen
) -> None:
    monkeypatch.setattr("random.random", lambda: 0.0)
    await sql.set("old", {"a": b"1"}, ttl=10)
    clock.advance(11)
    app = Starlette()
    app.add_middleware(
        SessionMiddleware,
        secret_key=SECRET,
        backend=sql,
        clock=clock,
        cleanup_interval=600,
    )
    messages = [{"type": "lifespan.startup"}]
    sent: list[str] = []
    done = anyio.Event()

    async def receive() -> dict[str, str]:
        if messages:
            return messages.pop()
        await done.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    async with anyio.create_task_group() as group:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        group.start_soon(app, scope, receive, send)
        with anyio.fail_after(10):
            await cleanup_seen.seen.wait()
        done.set()
    assert await sql_records(sql) == {}
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_without_an_interval_nothing_runs_in_the_background(sql: SQLBackend) -> None:
    sessions = SessionManager(
        AppSession, frontend=CookieFrontend(SECRET, secure=False), backend=sql
    )
    assert sessions.policy.cleanup_interval is None
    app = FastAPI()
    app.add_middleware(sessions.middleware)
    before = asyncio.all_tasks()
    async with sessions.lifespan(app):
        assert asyncio.all_tasks() == before  # no cleaning task started


@pytest.mark.parametrize("bad", [0, -5, "often", timedelta(0)])
def test_the_interval_must_be_a_positive_duration(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="cleanup_interval"):
        SessionPolicy(cleanup_interval=bad)  # type: ignore[arg-type]


async def test_memory_deletes_every_expired_record_on_demand(clock: Clock) -> None:
    memory = MemoryBackend(clock=clock)
    await memory.set("short", {"a": b"1"}, ttl=5)
    await memory.set("long", {"a": b"1"}, ttl=500)
    await memory.set("late", {"a": b"1"}, ttl=6)  # expires before "long", written after it
    clock.advance(10)
    assert await memory.delete_expired() == 2
    assert len(memory) == 1


async def test_stores_that_expire_records_themselves_have_nothing_to_delete(
    redis_url: str,
) -> None:
    redis = RedisBackend.from_url(redis_url)
    assert await redis.delete_expired() == 0
    await redis.aclose()
