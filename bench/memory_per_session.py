"""Bytes each stored session costs: in `MemoryBackend` (its objects' sizes) and in Redis.

A typical record: a logged-in user with a three-item cart and two preferences, as the
session model of the tests holds it, stored through a real `SessionManager` commit.

    .venv/bin/python bench/memory_per_session.py [--sessions 5000]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis

from bench.store_size import store_bytes_per_record
from fastapi_session_deps import CookieFrontend, MemoryBackend, RedisBackend, SessionManager
from tests.helpers import SECRET, call, cookie_header
from tests.redis_servers import RedisServer
from tests.support import AppSession, build_app


async def fill(backend: object, count: int) -> None:
    sessions = SessionManager(
        AppSession,
        frontend=CookieFrontend(SECRET, secure=False),
        backend=backend,  # type: ignore[arg-type]
    )
    app = build_app(sessions)
    for index in range(count):
        login = await call(app, f"/login?user_id={index}", "POST")
        headers = cookie_header(login.cookie() or "")
        for item in ("tea", "milk", "biscuits"):
            await call(app, f"/cart?item={item}", "POST", headers=headers)


async def memory_bytes(count: int) -> float:
    store = MemoryBackend(max_sessions=None)
    await fill(store, count)
    return store_bytes_per_record(store)


async def redis_bytes(count: int) -> tuple[float, float]:
    server = RedisServer(Path(tempfile.mkdtemp()) / "redis").start()
    try:
        client = aioredis.Redis.from_url(server.url)
        await fill(RedisBackend(client), count)
        sizes = [await client.memory_usage(key) async for key in client.scan_iter("session:*")]
        used = (await client.info("memory"))["used_memory"]
        await client.aclose()
        return statistics.median(s for s in sizes if s), used / count
    finally:
        server.stop()


async def main(count: int) -> None:
    per_memory = await memory_bytes(count)
    per_key, per_used = await redis_bytes(count)
    print(f"{count} sessions, each a user id, a 3-item cart, a counter and preferences")
    print(f"MemoryBackend: {per_memory:,.0f} bytes per session (the objects it holds)")
    print(
        f"Redis: {per_key:,.0f} bytes per key (MEMORY USAGE, median); "
        f"{per_used:,.0f} bytes per session of used_memory, server overhead included"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5000)
    asyncio.run(main(parser.parse_args().sessions))
