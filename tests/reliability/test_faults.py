"""Store faults under load: the store stopped, restarted and paused under 20 clients.

A real uvicorn serves ``fault_app`` on a loopback port; a real server of the test's own
(redis-server with ``appendfsync always``; PostgreSQL and MariaDB, whose commits reach the
kernel before they are acknowledged) is stopped and restarted by its pid and paused with
SIGSTOP while 20 clients keep incrementing counters in sessions of their own. SQLite has no
server to stop: another process takes the database's write lock instead, and lets go.
Bounded: about 12 seconds of load per store, every request with a time limit.

Counted: answers that are 5xx but not 503 (must be 0), answers slower than twice the store
timeout (0), and acknowledged increments missing afterwards (0).
"""

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from fastapi_session_deps import SQLBackend

from ..helpers import uvicorn_server
from ..redis_servers import RedisServer
from ..sql_servers import MariaDBServer, PostgresServer

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

CLIENTS = 20
STORE_TIMEOUT = 0.5
#: Seconds of load before each fault, and after the last.
PHASE_SECONDS = 1.0


@dataclass
class Client:
    acknowledged: list[int] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    slow: int = 0


async def run_client(http: httpx.AsyncClient, client: Client, stop: anyio.Event) -> None:
    while not stop.is_set():
        begin = time.monotonic()
        try:
            response = await http.post("/incr", timeout=10)
        except httpx.TransportError:  # pragma: no cover - the app server itself never stops
            client.statuses.append(0)
            continue
        if time.monotonic() - begin > 2 * STORE_TIMEOUT:
            client.slow += 1
        client.statuses.append(response.status_code)
        if response.status_code == 200:
            client.acknowledged.append(response.json()["counter"])
        else:
            await anyio.sleep(0.02)  # as a client honouring Retry-After a little


class SQLiteWriter:
    """Another process writing to the database for a while: holds its write lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None

    def lock(self) -> None:
        self.connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection.execute("BEGIN EXCLUSIVE")

    def unlock(self) -> None:
        if self.connection is not None:
            self.connection.execute("ROLLBACK")
            self.connection.close()
            self.connection = None

    def stop(self) -> None:
        self.unlock()


@asynccontextmanager
async def store_under_test(
    name: str, directory: Path
) -> AsyncIterator[tuple[dict[str, str], Any]]:
    """The fault app's settings for ``name``, and the server (or writer) to fault."""
    if name == "redis":
        redis = RedisServer(directory / "redis", durable=True).start()
        try:
            yield {"REDIS_URL": redis.url, "KEY_PREFIX": f"faults:{uuid.uuid4().hex}:"}, redis
        finally:
            redis.stop()
        return
    if name == "sqlite":
        url, server = f"sqlite+aiosqlite:///{directory}/sessions.db", None
    else:
        server = (PostgresServer if name == "postgres" else MariaDBServer)().start()
        url = server.url
    table = f"faults_{uuid.uuid4().hex[:12]}"
    try:
        backend = SQLBackend.from_url(url, table_name=table)
        await backend.create_table()
        await backend.aclose()
        yield (
            {"SQL_URL": url, "SQL_TABLE": table},
            server or SQLiteWriter(directory / "sessions.db"),
        )
    finally:
        if server is not None:
            server.remove()


def faults_of(name: str, target: Any) -> list[Callable[[], object]]:
    if name == "sqlite":
        return [target.lock, target.unlock, target.lock, target.unlock]
    return [
        target.stop,  # refused connections
        target.start,  # same port, same data
        target.pause,  # SIGSTOP: connections hang until the timeout
        target.resume,
    ]


@pytest.mark.parametrize("store", ["redis", "postgres", "mariadb", "sqlite"])
async def test_stop_restart_and_pause_under_load_lose_no_acknowledged_write(
    store: str, tmp_path: Path
) -> None:
    async with store_under_test(store, tmp_path) as (settings, target):
        await load_through_faults(store, settings, faults_of(store, target), target)


async def load_through_faults(
    store: str, settings: dict[str, str], faults: list[Callable[[], object]], target: Any
) -> None:
    env = {**settings, "STORE_TIMEOUT": str(STORE_TIMEOUT)}
    clients = [Client() for _ in range(CLIENTS)]
    try:
        with uvicorn_server(
            "tests.reliability.fault_app:app",
            app_dir=Path(__file__).parents[2],
            env=env,
            ready_path="/read",
        ) as base:
            https = [httpx.AsyncClient(base_url=base) for _ in range(CLIENTS)]
            try:
                stop = anyio.Event()
                with anyio.fail_after(60):
                    async with anyio.create_task_group() as group:
                        for http, client in zip(https, clients, strict=True):
                            group.start_soon(run_client, http, client, stop)
                        for fault in faults:
                            await anyio.sleep(PHASE_SECONDS)
                            # In a thread: a server's start may take a second, and the
                            # clients' clocks must not count it.
                            await anyio.to_thread.run_sync(fault)
                        await anyio.sleep(PHASE_SECONDS)  # recovered: load goes on
                        stop.set()
                final = [(await http.get("/read")).json()["counter"] for http in https]
            finally:
                for http in https:
                    await http.aclose()
    finally:
        target.stop()

    statuses = [status for client in clients for status in client.statuses]
    errors = [status for status in statuses if status >= 500 and status != 503]
    unavailable = statuses.count(503)
    slow = sum(client.slow for client in clients)
    lost = sum(
        1
        for client, counter in zip(clients, final, strict=True)
        for value in client.acknowledged
        if value > counter
    )
    print(
        f"\nfaults under load ({store}): {len(statuses)} requests, {statuses.count(200)} ok, "
        f"{unavailable} answered 503, {len(errors)} other 5xx, {slow} over "
        f"{2 * STORE_TIMEOUT:g} s, {lost} acknowledged writes lost"
    )
    assert errors == []
    assert slow == 0
    assert lost == 0
    assert unavailable > 0  # the faults did happen
    assert statuses.count(200) > 0
    for client, counter in zip(clients, final, strict=True):
        assert client.acknowledged, "every client got answers after the recovery"
        assert client.acknowledged[-1] == counter  # its last acknowledged write is the state
