"""fastapi-session-deps on each of its stores, in one run: what a request costs, and how fast
expired sessions are cleaned up while the site stays in use.

1. µs per request in process (raw ASGI calls; the databases and Redis are private servers
   on loopback), median of interleaved repetitions, over bare FastAPI;
2. round trips per request: Redis commands (counted with MONITOR) and SQL statements sent
   (counted with SQLAlchemy's ``before_cursor_execute``; ``BEGIN``/``COMMIT`` of a merge's
   transaction included);
3. cleanup: a table of 1,000,000 expired sessions emptied by the ``cleanup`` command (a
   process of its own, batches of 1,000) while 20 clients keep reading their sessions
   through uvicorn; rows/s, and the clients' p50/p99 before and during;
4. a user's sessions (``user_index=True``): what a log-in costs with the index, and what
   listing 10 and 1,000 sessions of one user costs, in time and in round trips.

Run it with ``bash bench/run.sh stores`` (``--quick`` for a short run with 100,000 rows).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.compare import (  # noqa: E402
    ROUTES,
    asgi,
    environment,
    interleaved,
    login_cookie,
    publish,
    redis_trips,
    report_header,
    time_route,
    timing_table,
)
from fastapi_session_deps import SQLBackend  # noqa: E402
from tests.helpers import uvicorn_server  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402
from tests.sql_servers import MariaDBServer, PostgresServer, find_binary  # noqa: E402

CLIENTS = 20
BATCH_SIZE = 1000


@dataclass
class Store:
    name: str
    module: str = "ours"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def sql_url(self) -> str | None:
        return self.env.get("BENCH_SQL_URL")


def build(store: Store) -> Any:
    module = importlib.import_module(f"bench.apps.{store.module}")
    with environment(store.env):
        return module.create_app()


def engine_of(app: Any) -> Any:
    """The SQLAlchemy engine of the app's SQLBackend."""
    return app.user_middleware[0].cls.__self__.backend.engine


async def make_table(url: str) -> None:
    backend = SQLBackend.from_url(url)
    await backend.drop_table()
    await backend.create_table()
    await backend.aclose()


# -- 1 and 2: per request ------------------------------------------------------------------


async def per_request(
    stores: list[Store], repeats: int, count: int
) -> dict[str, dict[str, float]]:
    return await interleaved({store.name: build(store) for store in stores}, repeats, count)


async def sql_statements(app: Any) -> dict[str, int]:
    """Statements each route sends to the database (after a warm-up)."""
    sent = 0

    def count(*_: Any) -> None:
        nonlocal sent
        sent += 1

    cookie = await login_cookie(app)
    for path, method in ROUTES:  # warm: connections, prepared statements
        await asgi(app, method, path, None if path == "/login" else cookie)
    target = engine_of(app).sync_engine
    sa.event.listen(target, "before_cursor_execute", count)
    result = {}
    try:
        for path, method in ROUTES:
            sent = 0
            await asgi(app, method, path, None if path == "/login" else cookie)
            result[path] = sent
    finally:
        sa.event.remove(target, "before_cursor_execute", count)
    return result


async def round_trips(stores: list[Store], redis_url: str) -> dict[str, dict[str, int]]:
    result = {}
    for store in stores:
        if store.sql_url:
            result[store.name] = await sql_statements(build(store))
        elif "BENCH_REDIS_URL" in store.env:
            result[store.name] = await redis_trips(build(store), redis_url, ROUTES)
        elif store.module != "bare":
            result[store.name] = dict.fromkeys((path for path, _ in ROUTES), 0)
    return result


# -- 4: a user's sessions ------------------------------------------------------------------

USER = "bench-user"


class _Sends:
    """Counts the round trips of Redis clients: each packed send is one."""

    count = 0


def counting_connection() -> type:
    import redis.asyncio as aioredis

    class Counting(aioredis.Connection):
        async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
            _Sends.count += 1
            await super().send_packed_command(*args, **kwargs)

    return Counting


def indexed(store: Store) -> Store:
    return Store(store.name, store.module, {**store.env, "BENCH_USER_INDEX": "1"})


def manager_of(app: Any) -> Any:
    return app.user_middleware[0].cls.__self__


async def listing_trips(app: Any) -> int:
    """Round trips of one listing: SQL statements, or Redis sends, or none."""
    manager = manager_of(app)
    backend = manager.backend
    if isinstance(backend, SQLBackend):
        sent = 0

        def count(*_: Any) -> None:
            nonlocal sent
            sent += 1

        sa.event.listen(backend.engine.sync_engine, "before_cursor_execute", count)
        try:
            await manager.users.list(USER)
        finally:
            sa.event.remove(backend.engine.sync_engine, "before_cursor_execute", count)
        return sent
    client = getattr(backend, "client", None)
    if client is None:
        return 0  # memory: no I/O
    pool = client.connection_pool
    if pool.connection_class.__name__ != "Counting":  # new connections count their sends
        pool.connection_class = counting_connection()
        await pool.disconnect()
        pool.reset()  # forget the connections made so far: new ones are counting ones
        await manager.users.list(USER)  # connect
    before = _Sends.count
    await manager.users.list(USER)
    return _Sends.count - before


async def user_sessions(stores: list[Store], repeats: int) -> dict[str, dict[str, float]]:
    """µs of a log-in with and without the index; a listing of 10 and of 1,000 sessions."""
    result: dict[str, dict[str, float]] = {}
    for store in stores:
        if store.module == "bare":
            continue
        if store.sql_url:
            await make_table(store.sql_url)
        plain, bound = build(store), build(indexed(store))
        samples: dict[str, list[float]] = {}
        for _ in range(repeats):
            samples.setdefault("login", []).append(
                await time_route(plain, "POST", "/login", None, 200)
            )
            samples.setdefault("login, indexed", []).append(
                await time_route(bound, "POST", "/login", None, 200)
            )
        manager = manager_of(bound)
        await manager.users.revoke_all(USER)
        row = {name: statistics.median(values) for name, values in samples.items()}
        for size in (10, 1000):
            await manager.users.revoke_all(USER)
            for _ in range(size):
                await asgi(bound, "POST", "/login", None)
            if len(await manager.users.list(USER)) != size:
                raise RuntimeError(f"{store.name}: not {size} sessions listed")
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                await manager.users.list(USER)
                times.append((time.perf_counter() - started) * 1e6)
            row[f"list {size}"] = statistics.median(times)
            row[f"trips {size}"] = await listing_trips(bound)
        await manager.users.revoke_all(USER)
        result[store.name] = row
    return result


# -- 3: cleanup under load -----------------------------------------------------------------

FILL = {
    "postgresql": (
        "INSERT INTO sessions (id_hash, data, meta, expires_at) "
        "SELECT md5(i::text) || md5((-i)::text), '{}'::jsonb, '{}'::jsonb, 1 "
        "FROM generate_series(1, :rows) AS i"
    ),
    "mysql": (
        "INSERT INTO sessions (id_hash, data, meta, expires_at) "
        "SELECT CONCAT(MD5(seq), MD5(-seq)), '{}', '{}', 1 FROM seq_1_to_{rows}"
    ),
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
        "INSERT INTO sessions (id_hash, data, meta, expires_at) "
        "SELECT printf('%064d', i), '{}', '{}', 1 FROM n"
    ),
}


async def fill(url: str, rows: int) -> float:
    """Insert ``rows`` expired sessions; return the seconds it took."""
    backend = SQLBackend.from_url(url)
    dialect = backend.engine.dialect.name
    statement = FILL[dialect].replace("{rows}", str(rows))  # MariaDB's sequence table name
    started = time.monotonic()
    async with backend.engine.begin() as connection:
        await connection.execute(sa.text(statement), {"rows": rows})
    elapsed = time.monotonic() - started
    await backend.aclose()
    return elapsed


@dataclass
class Readers:
    """Clients reading their sessions in a loop, their latencies kept by phase."""

    base: str
    phase: str = "before"
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"before": [], "during": []})
    errors: int = 0
    running: bool = True

    async def read(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            await client.post("/login")
            while self.running:
                phase, started = self.phase, time.perf_counter()
                response = await client.get("/read")
                self.latencies[phase].append((time.perf_counter() - started) * 1000)
                self.errors += response.status_code != 200


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def cleanup_under_load(
    url: str, env: dict[str, str], rows: int, before: float
) -> dict[str, Any]:
    await make_table(url)
    filled = await fill(url, rows)
    env = {**env, "PYTHONPATH": str(ROOT)}
    with uvicorn_server(
        "bench.apps.ours:create_app", env=env, factory=True, ready_path="/noop"
    ) as base:
        readers = Readers(base)
        tasks = [asyncio.create_task(readers.read()) for _ in range(CLIENTS)]
        await asyncio.sleep(before)  # the clients' latency with nothing else going on
        readers.phase = "during"
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "fastapi_session_deps", "cleanup", "--store", url),
            *("--batch-size", str(BATCH_SIZE), "--timeout", "10"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        took = time.monotonic() - started
        readers.running = False
        await asyncio.gather(*tasks)
    if process.returncode != 0:
        raise RuntimeError(f"cleanup failed on {url}: {err.decode()}")
    deleted = int(re.search(r"\d+", out.decode()).group())  # "Deleted N expired sessions."
    backend = SQLBackend.from_url(url)
    async with backend.engine.connect() as connection:
        left = (await connection.execute(sa.text("SELECT count(*) FROM sessions"))).scalar_one()
    await backend.aclose()
    return {
        "fill": filled,
        "deleted": deleted,
        "seconds": took,
        "left": left,
        "errors": readers.errors,
        "before": readers.latencies["before"],
        "during": readers.latencies["during"],
    }


# -- the run and its report ----------------------------------------------------------------


@contextmanager
def servers(directory: Path) -> Iterator[tuple[RedisServer, str, str, str]]:
    with ExitStack() as stack:
        redis = RedisServer(directory / "redis").start()
        stack.callback(redis.stop)
        postgres = PostgresServer().start()
        stack.callback(postgres.remove)
        mariadb = MariaDBServer().start()
        stack.callback(mariadb.remove)
        sqlite = f"sqlite+aiosqlite:///{directory / 'sessions.db'}"
        yield redis, sqlite, postgres.url, mariadb.url


def versions() -> str:
    from importlib.metadata import version

    names = ["fastapi", "sqlalchemy", "aiosqlite", "asyncpg", "aiomysql", "redis"]
    servers = []
    for name, binary, pattern in (
        ("PostgreSQL", find_binary("postgres", "/usr/lib/postgresql/*/bin/postgres"), r"\) (\S+)"),
        ("MariaDB", find_binary("mariadbd", "/usr/sbin/mariadbd"), r"Ver (\d[\d.]*)"),
    ):
        if binary:
            output = subprocess.run(  # noqa: S603 - the machine's server binaries
                [binary, "--version"], capture_output=True, text=True, check=False
            ).stdout
            found = re.search(pattern, output)
            servers.append(f"{name} {found.group(1) if found else '?'}")
    return ", ".join(
        [f"Python {platform.python_version()}", *servers]
        + [f"{name} {version(name)}" for name in names]
    )


def report(
    timing: dict[str, dict[str, float]],
    trips: dict[str, dict[str, int]],
    users: dict[str, dict[str, float]],
    cleanup: dict[str, dict[str, Any]],
    settings: str,
) -> str:
    lines = report_header(settings, versions()) + timing_table(timing, "store")
    lines += [
        "",
        "### Round trips per request (Redis commands; SQL statements, BEGIN/COMMIT included)",
        "",
        "| store | " + " | ".join(path for path, _ in ROUTES) + " |",
        "| --- |" + " ---: |" * len(ROUTES),
    ]
    lines += [
        f"| {name} | " + " | ".join(str(row[p]) for p, _ in ROUTES) + " |"
        for name, row in trips.items()
    ]
    lines += [
        "",
        "### A user's sessions (`user_index=True`)",
        "",
        "µs per `/login` in process without and with the index; a listing of one user's 10",
        "and 1,000 sessions (`sessions.users.list`), in µs, and its round trips (SQL",
        "statements, Redis sends: `ZRANGE`, then one pipeline of the records).",
        "",
        "| store | /login | /login, indexed | list 10 | round trips | list 1,000 | round trips |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {row['login']:.1f} | {row['login, indexed']:.1f} | {row['list 10']:.1f} | "
        f"{row['trips 10']:.0f} | {row['list 1000']:,.1f} | {row['trips 1000']:.0f} |"
        for name, row in users.items()
    ]
    lines += [
        "",
        f"### Cleanup: expired rows deleted while {CLIENTS} clients keep reading",
        "",
        f"`cleanup --batch-size {BATCH_SIZE}` in a process of its own; the clients read their",
        "sessions through uvicorn (one worker) on loopback; latencies in ms.",
        "",
        "| store | rows deleted | seconds | rows/s | p50 / p99 before | p50 / p99 during "
        "| non-200 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in cleanup.items():
        before, during = row["before"], row["during"]
        lines.append(
            f"| {name} | {row['deleted']:,} | {row['seconds']:.1f} | "
            f"{row['deleted'] / row['seconds']:,.0f} | "
            f"{percentile(before, 0.5):.1f} / {percentile(before, 0.99):.1f} | "
            f"{percentile(during, 0.5):.1f} / {percentile(during, 0.99):.1f} | "
            f"{row['errors']} |"
        )
    return "\n".join(lines) + "\n"


async def main(options: argparse.Namespace) -> None:
    repeats, count, rows = (3, 300, 100_000) if options.quick else (7, 2000, 1_000_000)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory, servers(Path(directory)) as found:
        redis, sqlite, postgres, mariadb = found
        sql = {"SQLite": sqlite, "PostgreSQL": postgres, "MariaDB": mariadb}
        stores = [
            Store("bare FastAPI", "bare"),
            Store("memory"),
            Store("Redis", env={"BENCH_REDIS_URL": redis.url}),
            *(Store(name, env={"BENCH_SQL_URL": url}) for name, url in sql.items()),
        ]
        for url in sql.values():
            await make_table(url)
        timing = await per_request(stores, repeats, count)
        trips = await round_trips(stores, redis.url)
        users = await user_sessions(stores, repeats)
        cleanup = {
            name: await cleanup_under_load(url, {"BENCH_SQL_URL": url}, rows, 5)
            for name, url in sql.items()
        }
    for name, row in cleanup.items():
        if row["left"] != CLIENTS or row["deleted"] != rows:
            raise RuntimeError(f"{name}: {row['deleted']} deleted, {row['left']} left")
    settings = (
        f"{'quick' if options.quick else 'full'} run: {repeats} interleaved repetitions of "
        f"{count} requests per route; cleanup of {rows:,} rows; "
        f"took {time.monotonic() - started:.0f} s"
    )
    await publish(report(timing, trips, users, cleanup, settings), options.output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, 100,000 rows")
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    asyncio.run(main(parser.parse_args()))
