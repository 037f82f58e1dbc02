"""Shared fixtures: the clock, the store under test, and a ready-made app."""

import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_session_deps import Backend, MemoryBackend, RedisBackend, SessionManager, SQLBackend

from .helpers import Clock, CountingBackend
from .redis_servers import RedisCluster, RedisServer
from .sql_servers import MariaDBServer, PostgresServer
from .support import (
    RUN_TABLES,
    STORES,
    AppSession,
    ManagerFactory,
    PassTime,
    StoreRecords,
    build_app,
    drop_run_tables,
    each_store,
    inner_store,
    manager_factory,
    sql_records,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def fresh_fault_log() -> Iterator[None]:
    """Each test sees the first store fault it causes logged (the log is per process)."""
    from fastapi_session_deps._faults import faults

    faults.reset()
    yield
    faults.reset()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis for the whole run: ``REDIS_URL`` if set, else our own redis-server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-master Redis Cluster of our own for the whole run."""
    cluster = RedisCluster(Path(tmp_path_factory.mktemp("redis-cluster"))).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL for the whole run: ``POSTGRES_URL`` if set, else our own."""
    if os.environ.get("POSTGRES_URL"):
        yield os.environ["POSTGRES_URL"]
        drop_run_tables(os.environ["POSTGRES_URL"])
        return
    server = PostgresServer().start()
    try:
        yield server.url
    finally:
        RUN_TABLES.pop(server.url, None)
        server.remove()


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A real MariaDB (or MySQL) for the whole run: ``MYSQL_URL`` if set, else our own."""
    if os.environ.get("MYSQL_URL"):
        yield os.environ["MYSQL_URL"]
        drop_run_tables(os.environ["MYSQL_URL"])
        return
    server = MariaDBServer().start()
    try:
        yield server.url
    finally:
        RUN_TABLES.pop(server.url, None)
        server.remove()


#: Every store the behaviour suite runs against.
backend = pytest.fixture(params=STORES, name="backend")(each_store)


@pytest.fixture
def store_records(backend: Backend) -> StoreRecords:
    """Read every record of the store under test, raw keys and all."""

    async def read() -> dict[str, dict[str, bytes]]:
        store = inner_store(backend)
        if isinstance(store, MemoryBackend):
            return {key: dict(entry) for key, entry in store._records.items()}
        if isinstance(store, SQLBackend):
            return await sql_records(store)
        assert isinstance(store, RedisBackend)
        records: dict[str, dict[str, bytes]] = {}
        async for key in store.client.scan_iter(match=store.key_prefix + "*"):
            if await store.client.type(key) != b"hash":
                continue  # an index of a user's sessions, or a lock
            fields = await store.client.hgetall(key)
            records[key.decode()] = {name.decode(): value for name, value in fields.items()}
        return records

    return read


@pytest.fixture
def pass_time(backend: Backend, clock: Clock) -> PassTime:
    """Let ``seconds`` go by for the manager's clock and for the store's expiry alike.

    Redis keeps real time, so its records are aged by lowering their TTLs by ``seconds``
    (and deleting those that run out): the same effect, without sleeping.
    """

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        store = inner_store(backend)
        if not isinstance(store, RedisBackend):
            return
        async for key in store.client.scan_iter(match=store.key_prefix + "*"):
            left = await store.client.pttl(key)
            if left < 0:
                continue
            if left <= seconds * 1000:
                await store.client.delete(key)
            else:
                await store.client.pexpire(key, int(left - seconds * 1000))

    return advance


@pytest.fixture
def counting(backend: Backend) -> CountingBackend:
    return CountingBackend(backend)


@pytest.fixture
def make_manager(counting: CountingBackend, clock: Clock) -> ManagerFactory:
    """Build a manager on the counting store and the test clock; keywords override."""
    return manager_factory(counting, clock)


@pytest.fixture
def manager(make_manager: ManagerFactory) -> SessionManager[AppSession]:
    return make_manager(idle_timeout=1800, absolute_timeout=86400)


@pytest.fixture
def app(manager: SessionManager[AppSession]) -> FastAPI:
    return build_app(manager)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


#: A test still running after this many seconds is interrupted, and the run with it
#: (fixtures torn down, servers stopped). pytest-timeout's own limit (120 s) raises inside
#: the test, and hypothesis takes that for a failing example and replays it with no limit
#: at all; a stuck test would otherwise hold the run until its caller gives up. The
#: stacks of all threads are printed at ``faulthandler_timeout`` (pyproject.toml), before.
HANG_LIMIT = 300.0


class _Watchdog:
    """Sends this process SIGINT (every 10 s until it stops) once a test outlives
    `HANG_LIMIT`; a real signal, so a blocked system call is woken too."""

    def __init__(self) -> None:
        self.started: float | None = None
        threading.Thread(target=self._watch, name="hang-watchdog", daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(1)
            started = self.started
            if started is not None and time.monotonic() - started > HANG_LIMIT:
                self.started = started + 10
                os.kill(os.getpid(), signal.SIGINT)


_watchdog = _Watchdog()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    _watchdog.started = time.monotonic()
    try:
        return (yield)
    finally:
        _watchdog.started = None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the reports of the runs that measure, when they ran: the lost updates of the
    concurrency runs, the times of the hundred thousand sessions of one user."""
    from . import test_concurrency_server
    from .reliability import test_scale

    for line in [*test_concurrency_server.report_lines(), *test_scale.report_lines()]:
        terminalreporter.write_line(line)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under the lowest-versions lane (``scripts/lowest.sh``), refuse to test anything but the
    built wheel: the package must come from the lane's site-packages, not a source tree."""
    import sysconfig

    import fastapi_session_deps

    if os.environ.get("FSD_EXPECT_INSTALLED"):
        where = Path(fastapi_session_deps.__file__).resolve()
        site = Path(sysconfig.get_paths()["purelib"]).resolve()
        if site not in where.parents:
            raise pytest.UsageError(f"testing {where}, not the wheel installed in {site}")
