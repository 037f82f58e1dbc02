"""Lost updates under each concurrency policy, through real uvicorn workers on loopback.

For each store (memory with 1 worker; Redis with 1 and 2 workers) and policy (merge, lock):
200 concurrent POSTs, 20 at a time, increment one counter of one session; then 200 more each
set a key of their own. Prints how many updates were lost. Starts its own redis-server.

    .venv/bin/python bench/lost_updates.py
"""

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.redis_servers import RedisServer
from tests.test_concurrency_server import CASES, CONCURRENCY, REQUESTS, hammer, serve


async def run(store: str, workers: int, policy: str, redis_url: str) -> tuple[int, int]:
    with serve(store, policy, workers, redis_url if store == "redis" else None) as base:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            await client.post("/start")
            await client.post("/mark/-1")
            await hammer(client, ["/incr"] * REQUESTS)
            counted = int((await client.get("/read")).text)
            await hammer(client, [f"/mark/{i}" for i in range(REQUESTS)])
            marks = int((await client.get("/marks")).text) - 1
    return REQUESTS - counted, REQUESTS - marks


async def main() -> None:
    server = RedisServer(Path(tempfile.mkdtemp()) / "redis").start()
    try:
        print(f"lost updates out of {REQUESTS} concurrent requests, {CONCURRENCY} at a time")
        print(f"{'policy':7} {'store':7} {'workers':>7}  {'one field':>9}  {'own fields':>10}")
        for policy in ("merge", "lock"):
            for store, workers in CASES:
                same, own = await run(store, workers, policy, server.url)
                print(f"{policy:7} {store:7} {workers:>7}  {same:>9}  {own:>10}")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
