"""What the suites share besides fixtures: the stores under test, and an app that drives
every part of the typed API.

`conftest.py` builds its fixtures from these; test modules and the bench scripts import
them from here.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from fastapi_session_deps import (
    Backend,
    CookieFrontend,
    FunctionBackend,
    MemoryBackend,
    RedisBackend,
    SessionManager,
    SessionModel,
    SQLBackend,
)
from fastapi_session_deps.backends.sql import decode_row

from .helpers import SECRET, Clock, CountingBackend, served_in_thread

STORES = ["memory", "redis", "redis-cluster", "sqlite", "postgres", "mariadb"]
#: The SQL stores, and the environment variable that points each at an existing server.
SQL_STORES = {"sqlite": None, "postgres": "POSTGRES_URL", "mariadb": "MYSQL_URL"}
#: Every store call's bound in the store fixtures (the stores' default is 1 s).
STORE_TIMEOUT = 10.0


class AppSession(SessionModel):
    user_id: int | None = None
    counter: int = 0
    cart: list[str] = []
    prefs: dict[str, str] = {}


def sql_url(name: str, request: pytest.FixtureRequest) -> str:
    """The database URL of the SQL store ``name``: a file for SQLite, else a server's."""
    if name == "sqlite":
        directory = request.getfixturevalue("tmp_path")
        return f"sqlite+aiosqlite:///{directory}/sessions.db"
    return str(request.getfixturevalue(f"{name}_url"))


#: The run's own tables on each database server (URL -> table name): made once (so a
#: shared server loses nothing), emptied for each test, dropped when the run ends.
RUN_TABLES: dict[str, str] = {}


@asynccontextmanager
async def open_sql_store(url: str, clock: Clock, **options: Any) -> AsyncIterator[SQLBackend]:
    """A `SQLBackend` on empty tables: the run's own on a server (DDL there costs more
    than a test), a new file's on SQLite."""
    name = f"sessions_{uuid.uuid4().hex[:12]}"
    if not url.startswith("sqlite"):
        name = RUN_TABLES.setdefault(url, name)
    backend = SQLBackend.from_url(url, table_name=name, clock=clock, **options)
    await backend.create_table()  # unless it exists (a test may have dropped it)
    async with backend.engine.begin() as connection:
        for table in (backend.table, backend.lock_table):
            await connection.execute(table.delete())
    try:
        yield backend
    finally:
        await backend.aclose()


def drop_run_tables(url: str) -> None:
    """Drop the run's tables on the server at ``url`` (one the tests did not start)."""
    name = RUN_TABLES.pop(url, None)
    if name is not None:

        async def drop() -> None:
            backend = SQLBackend.from_url(url, table_name=name)
            await backend.drop_table()
            await backend.aclose()

        asyncio.run(drop())


@asynccontextmanager
async def open_store(
    name: str, request: pytest.FixtureRequest, clock: Clock
) -> AsyncIterator[Backend]:
    """One of the stores under test, cleaned up afterwards.

    Redis tests each get a key prefix of their own instead of a flushed database, so that a
    ``REDIS_URL`` pointing at a shared server loses nothing. ``http-*`` stores are an
    `HTTPBackend` talking to the session service, served by uvicorn on a loopback port,
    over the named store. Each has a generous timeout: these tests are about what the
    stores keep, not how fast a loaded machine answers (the timeout tests set their own).
    """
    if name == "memory":
        yield MemoryBackend(clock=clock)
        return
    if name in SQL_STORES:
        async with open_sql_store(sql_url(name, request), clock, timeout=STORE_TIMEOUT) as sql:
            yield sql
        return
    if name == "function":
        from .rest_store import RestStore, rest_functions

        # FunctionBackend over the kind of REST service the tutorial imagines, served by
        # uvicorn on a loopback port and reached with httpx, as the tutorial does.
        rest = RestStore()
        with served_in_thread(rest.app) as base:
            async with rest_functions(f"{base}/sessions/") as (get, save, delete):
                backend = FunctionBackend(get, save, delete, clock=clock, timeout=STORE_TIMEOUT)
                backend.served = rest  # type: ignore[attr-defined]
                yield backend
        return
    if name.startswith("http-"):
        from fastapi_session_deps.backends.http import HTTPBackend
        from fastapi_session_deps.service import create_app

        # The service runs on its own event loop, so it gets a store of its own; the test
        # sees the same records through `served` (this loop's view, for inspection).
        from .helpers import SERVICE_TOKEN

        if name == "http-memory":
            store: Backend = MemoryBackend(clock=clock)
            view: Backend = store
        else:
            url, prefix = request.getfixturevalue("redis_url"), f"test:{uuid.uuid4().hex}:"
            store = RedisBackend.from_url(url, key_prefix=prefix, timeout=STORE_TIMEOUT)
            view = RedisBackend(aioredis.Redis.from_url(url), key_prefix=prefix)
        with served_in_thread(create_app(store, token=SERVICE_TOKEN)) as base:
            # 50 calls at once queue in the one-threaded service.
            backend = HTTPBackend.from_url(base, token=SERVICE_TOKEN, timeout=STORE_TIMEOUT)
            backend.served = view  # type: ignore[attr-defined]
            try:
                yield backend
            finally:
                await backend.aclose()
        if isinstance(view, RedisBackend):
            async for key in view.client.scan_iter(match=view.key_prefix + "*"):
                await view.client.delete(key)
            await view.client.aclose()
        return
    client = (
        aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
        if name == "redis"
        else aioredis.RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    )
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        yield RedisBackend(client, key_prefix=prefix, timeout=STORE_TIMEOUT)
    finally:
        async for key in client.scan_iter(match=prefix + "*"):
            await client.delete(key)
        await client.aclose()


async def each_store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Backend]:
    """The store ``request.param`` names, on the test's clock where it has one."""
    async with open_store(request.param, request, clock) as store:
        yield store


#: Every store, and the session service over memory and over Redis: for a module whose
#: tests are about the engine, as ``backend = pytest.fixture(...)(each_store)``.
WITH_THE_SERVICE = [*STORES, "http-memory", "http-redis"]


PassTime = Callable[[float], Awaitable[None]]
StoreRecords = Callable[[], Awaitable[dict[str, dict[str, bytes]]]]


def inner_store(store: Backend) -> Backend:
    """The store that really holds the records: through counting wrappers and the service."""
    while True:
        if isinstance(store, CountingBackend):
            store = store.inner
        elif hasattr(store, "served"):
            store = store.served
        else:
            return store


async def sql_records(store: SQLBackend) -> dict[str, dict[str, bytes]]:
    """Every row of a SQL store's table, expired or not, as records."""
    table = store.table
    query = sa.select(
        table.c.id_hash, sa.cast(table.c.data, sa.Text()), sa.cast(table.c.meta, sa.Text())
    )
    async with store.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return {key: decode_row(data, meta) for key, data, meta in rows}


ManagerFactory = Callable[..., SessionManager[AppSession]]


def manager_factory(backend: Backend, clock: Clock) -> ManagerFactory:
    """Build managers on ``backend`` and the test clock; keywords override."""

    def factory(**options: Any) -> SessionManager[AppSession]:
        frontend_options = options.pop("frontend_options", {})
        options.setdefault(
            "frontend", CookieFrontend(secret_key=SECRET, secure=False, **frontend_options)
        )
        options.setdefault("backend", backend)
        options.setdefault("clock", clock)
        return SessionManager(AppSession, **options)

    return factory


def build_app(sessions: SessionManager[AppSession]) -> FastAPI:
    """An app whose routes exercise every part of the typed API."""
    app = FastAPI(lifespan=sessions.lifespan)
    app.add_middleware(sessions.middleware)
    Session = Annotated[AppSession, Depends(sessions.get_session)]
    Required = Annotated[AppSession, Depends(sessions.require_session)]

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(session: Session) -> dict[str, Any]:
        return session.model_dump()

    @app.get("/read-only")
    async def read_only(
        session: Annotated[AppSession, Depends(sessions.get_session_readonly)],
    ) -> dict[str, Any]:
        return session.model_dump()

    @app.get("/me")
    async def me(session: Required) -> dict[str, Any]:
        return session.model_dump()

    @app.post("/login")
    async def login(session: Session, user_id: int = 1) -> dict[str, bool]:
        await sessions.regenerate(session)
        session.user_id = user_id
        return {"ok": True}

    @app.post("/incr")
    async def incr(session: Session) -> dict[str, int]:
        session.counter += 1
        return {"counter": session.counter}

    @app.post("/cart")
    async def cart(session: Session, item: str) -> list[str]:
        session.cart.append(item)
        return session.cart

    @app.post("/logout")
    async def logout(session: Session, note: str | None = None) -> dict[str, bool]:
        await sessions.destroy(session)
        if note is not None:
            session.prefs["note"] = note
        return {"ok": True}

    @app.post("/fail")
    async def fail(session: Session, status: int = 500) -> JSONResponse:
        session.counter += 100
        return JSONResponse({"failed": True}, status_code=status)

    @app.post("/crash")
    async def crash(session: Session) -> None:
        session.counter += 1000
        raise RuntimeError("route failed")

    @app.get("/request-only")
    async def request_only(request: Request) -> dict[str, str]:
        return {"path": request.url.path}

    return app
