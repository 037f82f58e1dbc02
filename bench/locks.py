"""How fast one session's lock passes between the requests of one process, per store.

200 lock holders, 20 waiting at a time, in one process: each takes the lock of one session,
holds it for 1 ms and releases it. Two ways of waiting, interleaved in repetitions of the
same run: only trying at doubling intervals (2 ms up to 50 ms), and also waking the
longest waiter as the lock is released (`LockWaits.released`). The fastest repetition of
each is reported, in seconds for all 200, and the median beside it. Private Redis and
PostgreSQL servers on loopback, and a SQLite file.

    bash bench/run.sh locks [--repeats 6] [--output bench/LOCKS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from bench.compare import publish, report_header, versions  # noqa: E402
from fastapi_session_deps import RedisBackend, SQLBackend  # noqa: E402
from fastapi_session_deps.backends.base import LockWaits  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402
from tests.sql_servers import PostgresServer  # noqa: E402

HOLDERS, AT_ONCE, HOLD = 200, 20, 0.001


async def hand_offs(backend: Any, *, wake: bool) -> float:
    """Seconds for `HOLDERS` to take and release one lock, `AT_ONCE` waiting at a time."""
    waits: LockWaits = backend._lock_waits
    release = backend.release_lock
    limit = anyio.Semaphore(AT_ONCE)
    key = uuid.uuid4().hex

    async def one() -> None:
        token = uuid.uuid4().hex
        async with limit:
            if not await backend.acquire_lock(key, token, ttl=30, wait=30):
                raise RuntimeError("a lock was not taken within 30 s")
            await anyio.sleep(HOLD)
            await release(key, token)
            if wake:
                waits.released(key)  # a second call is harmless: no one is left asleep

    if not wake:  # a store that signals its releases: not this time
        waits.released = lambda key: None  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(HOLDERS):
                group.start_soon(one)
        return time.perf_counter() - started
    finally:
        if not wake:
            del waits.released


@asynccontextmanager
async def stores(scratch: Path) -> AsyncIterator[dict[str, Any]]:
    async with AsyncExitStack() as stack:
        redis = RedisServer(scratch / "redis").start()
        stack.callback(redis.stop)
        postgres = PostgresServer().start()
        stack.callback(postgres.stop)
        backends: dict[str, Any] = {
            "Redis": RedisBackend.from_url(redis.url, key_prefix="bench:", timeout=10),
            "SQLite": SQLBackend.from_url(f"sqlite+aiosqlite:///{scratch}/s.db", timeout=10),
            "PostgreSQL": SQLBackend.from_url(postgres.url, timeout=10),
        }
        for backend in backends.values():
            stack.push_async_callback(backend.aclose)
            if isinstance(backend, SQLBackend):
                await backend.create_table()
        yield backends


async def main(options: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        async with stores(Path(scratch)) as backends:
            for name, backend in backends.items():
                seconds: dict[bool, list[float]] = {False: [], True: []}
                for repeat in range(options.repeats):
                    for wake in (False, True) if repeat % 2 else (True, False):
                        seconds[wake].append(await hand_offs(backend, wake=wake))
                poll, woken = seconds[False], seconds[True]
                rows.append(
                    f"| {name} | {min(poll):.2f} ({statistics.median(poll):.2f}) "
                    f"| {min(woken):.2f} ({statistics.median(woken):.2f}) "
                    f"| {min(woken) / min(poll):.2f} |"
                )
    settings = f"{HOLDERS} holders, {AT_ONCE} at once, {HOLD * 1000:g} ms held, "
    settings += f"{options.repeats} interleaved repetitions"
    lines = [
        "# Lock hand-offs in one process",
        "",
        *report_header(settings, versions()),
        "",
        "Seconds for all hand-offs: fastest repetition (median).",
        "",
        "| store | trying at intervals | and woken on release | ratio |",
        "| --- | ---: | ---: | ---: |",
        *rows,
    ]
    await publish("\n".join(lines) + "\n", options.output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    asyncio.run(main(parser.parse_args()))
