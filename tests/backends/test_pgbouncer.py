"""PostgreSQL behind PgBouncer in transaction pooling mode, the common deployment.

A real ``pgbouncer`` (the machine's, which the test command installs) in front of the
suite's private PostgreSQL, with fewer server connections than clients, so that a client's
statements land on whichever server connection is free. ``PGBOUNCER_URL`` points the
tests at a PgBouncer of your own instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa

from fastapi_session_deps import (
    BackendUnavailable,
    ConfigurationError,
    SQLBackend,
    StoreNotSetUp,
)

from ..helpers import Clock
from ..sql_servers import PgBouncer
from ..support import build_app, manager_factory
from .astray import CLIENTS, ROUNDS, many_at_once

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def bouncer(postgres_url: str) -> Iterator[PgBouncer | str]:
    if os.environ.get("PGBOUNCER_URL"):
        yield os.environ["PGBOUNCER_URL"]
        return
    port = sa.make_url(postgres_url).port
    assert port is not None
    server = PgBouncer(port).start()
    try:
        yield server
    finally:
        server.remove()


def url_of(bouncer: PgBouncer | str) -> str:
    return bouncer if isinstance(bouncer, str) else bouncer.url


@pytest.fixture
async def pooled(bouncer: PgBouncer | str, clock: Clock) -> AsyncIterator[SQLBackend]:
    store = SQLBackend.from_url(
        url_of(bouncer),
        table_name=f"pooled_{os.getpid()}",
        timeout=10,
        clock=clock,
        transaction_pooling=True,
    )
    await store.create_table()
    try:
        yield store
    finally:
        await store.drop_table()
        await store.aclose()


def test_without_the_setting_prepared_statements_go_astray(bouncer: PgBouncer | str) -> None:
    # Why the setting exists: asyncpg prepares each statement, and in transaction mode the
    # next step may reach another server connection, where it was never prepared. Every
    # such failure is a store's fault (a 503), whatever step of the driver it came from:
    # anything else would end the run. In a process of its own, which keeps the
    # connections that fail half-way (some SQLAlchemy releases leave them unclosed).
    run = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tests.backends.astray", url_of(bouncer)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    failures, astray = (int(word) for word in run.stdout.split())
    assert failures > 0
    assert astray > 0  # "prepared statement ... does not exist"


async def test_with_transaction_pooling_every_operation_works_from_many_clients(
    pooled: SQLBackend,
) -> None:
    assert await many_at_once(pooled) == []
    page = await pooled.index_page("ada", limit=CLIENTS)
    assert len(page) == CLIENTS
    assert len(await pooled.index_end("ada", [key for key, _, _ in page])) == CLIENTS


async def test_an_app_behind_pgbouncer_logs_in_counts_and_logs_out(
    pooled: SQLBackend, clock: Clock
) -> None:
    sessions = manager_factory(pooled, clock)(user_index=True)
    app = build_app(sessions)
    transport = httpx.ASGITransport(app=app)

    async def visitor() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.post("/login")).status_code == 200
            for expected in range(1, ROUNDS + 1):
                answer = await c.post("/incr")
                assert answer.json() == {"counter": expected}
            assert (await c.post("/logout")).status_code == 200
            assert (await c.get("/me")).status_code == 401

    async with anyio.create_task_group() as group:
        for _ in range(CLIENTS):
            group.start_soon(visitor)


def test_transaction_pooling_is_for_postgresql(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="transaction_pooling=True is for PostgreSQL"):
        SQLBackend.from_url(f"sqlite+aiosqlite:///{tmp_path}/s.db", transaction_pooling=True)


@pytest.mark.parametrize("fault", ["stopped", "paused"])
async def test_pgbouncer_stopped_or_paused_is_a_503_in_time_and_its_return_recovers(
    bouncer: PgBouncer | str, pooled: SQLBackend, fault: str
) -> None:
    if isinstance(bouncer, str):
        pytest.skip("PGBOUNCER_URL is not ours to stop")
    await pooled.set("k", {"a": b"1"}, ttl=60)
    pooled.timeout = 0.5
    bouncer.stop() if fault == "stopped" else bouncer.pause()
    try:
        with pytest.raises(BackendUnavailable):  # refused, or no answer within 0.5 s
            await pooled.get("k")
    finally:
        bouncer.start() if fault == "stopped" else bouncer.resume()
    pooled.timeout = 10
    assert await pooled.get("k") == {"a": b"1"}


async def test_a_missing_table_behind_pgbouncer_is_named(
    bouncer: PgBouncer | str, clock: Clock
) -> None:
    store = SQLBackend.from_url(
        url_of(bouncer), table_name="never_created", clock=clock, transaction_pooling=True
    )
    try:
        with pytest.raises(StoreNotSetUp, match="no session table 'never_created'"):
            await store.get("k")
    finally:
        await store.aclose()
