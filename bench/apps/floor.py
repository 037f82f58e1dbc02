"""The floor of any Redis session read: a bare FastAPI route awaiting one HGETALL."""

import asyncio
import os

import redis.asyncio as aioredis
from fastapi import FastAPI


def create_app() -> FastAPI:
    client = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    app = FastAPI()

    @app.get("/hgetall")
    async def hgetall() -> dict[str, int]:
        await client.hgetall("bench:floor")
        return {"counter": 0}

    @app.get("/hgetall-bounded")
    async def hgetall_bounded() -> dict[str, int]:
        async with asyncio.timeout(1.0):  # what bounds every call of RedisBackend
            await client.hgetall("bench:floor")
        return {"counter": 0}

    return app
