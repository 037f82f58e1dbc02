"""The floor of any Redis session read: a bare FastAPI route awaiting one HGETALL.

The client is the one `RedisBackend.from_url` builds (redis-py's socket timeouts off), and
the call is awaited bare, inside `asyncio.timeout`, and inside the bound `RedisBackend`
puts on every call (one event-loop timer for all calls in flight).
"""

import asyncio
import os

import redis.asyncio as aioredis
from fastapi import FastAPI

from fastapi_session_deps._deadline import Deadlines


def create_app() -> FastAPI:
    client = aioredis.Redis.from_url(
        os.environ["BENCH_REDIS_URL"], socket_timeout=None, socket_connect_timeout=None
    )
    deadlines = Deadlines(1.0)
    app = FastAPI()

    @app.get("/hgetall")
    async def hgetall() -> dict[str, int]:
        await client.hgetall("bench:floor")
        return {"counter": 0}

    @app.get("/hgetall-timeout")
    async def hgetall_timeout() -> dict[str, int]:
        async with asyncio.timeout(1.0):
            await client.hgetall("bench:floor")
        return {"counter": 0}

    @app.get("/hgetall-bounded")
    async def hgetall_bounded() -> dict[str, int]:
        await deadlines.run(lambda: client.hgetall("bench:floor"))
        return {"counter": 0}

    return app
