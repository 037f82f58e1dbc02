"""Cost of a session read and write per request, in process, on a real local Redis.

Drives the app with raw ASGI calls (no network between client and app), against bare
FastAPI, the memory store and Redis, each with the "merge" and the "lock" policy, in
interleaved repetitions, and prints the median µs per request and the Redis round trips of
each route (counted with MONITOR).

    .venv/bin/python bench/redis_requests.py [--requests 2000] [--repeats 5]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis
from fastapi import FastAPI

from fastapi_session_deps import (
    CookieFrontend,
    HTTPBackend,
    MemoryBackend,
    RedisBackend,
    SessionManager,
)
from tests.helpers import (
    SECRET,
    SERVICE_TOKEN,
    call,
    cookie_header,
    empty_body_receiver,
    http_scope,
    uvicorn_server,
)
from tests.redis_servers import RedisServer
from tests.support import AppSession, build_app


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/read")
    async def read() -> dict[str, Any]:
        return {"user_id": 1, "counter": 0, "cart": [], "prefs": {}}

    @app.get("/read-only")
    async def read_only() -> dict[str, Any]:
        return {"user_id": 1, "counter": 0, "cart": [], "prefs": {}}

    @app.post("/incr")
    async def incr() -> dict[str, int]:
        return {"counter": 1}

    return app


async def per_request_us(app: Any, path: str, method: str, headers: Any, count: int) -> float:
    async def send(message: Any) -> None:
        pass

    started = time.perf_counter()
    for _ in range(count):
        await app(http_scope(path, method, headers), empty_body_receiver(), send)
    return (time.perf_counter() - started) / count * 1e6


async def round_trips(url: str, action: Any) -> list[str]:
    watcher, marker = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
    await marker.ping()
    async with watcher.monitor() as monitor:
        await action()
        await marker.echo("end-of-action")
        commands = []
        while True:
            seen = await monitor.next_command()
            if "end-of-action" in seen["command"]:
                break
            if seen["client_type"] != "lua":
                commands.append(seen["command"].split()[0].upper())
    await watcher.aclose()
    await marker.aclose()
    return commands


async def main(requests: int, repeats: int) -> None:
    server = RedisServer(Path(tempfile.mkdtemp()) / "redis").start()
    # The session service, on the same Redis, for the "http" rows.
    service_env = {"SESSION_SERVICE_TOKEN": SERVICE_TOKEN, "SESSION_SERVICE_REDIS_URL": server.url}
    service = uvicorn_server(
        "fastapi_session_deps.service:from_env",
        env=service_env,
        factory=True,
        ready_path="/v1/sessions/none",
    )
    service_url = service.__enter__()
    try:
        apps: dict[str, Any] = {"bare": bare_app()}
        frontend = CookieFrontend(SECRET, secure=False)

        def store_for(name: str) -> Any:
            if name == "memory":
                return MemoryBackend()
            if name == "redis":
                return RedisBackend.from_url(server.url)
            return HTTPBackend.from_url(service_url, token=SERVICE_TOKEN)

        managers = {
            f"{store}{'+lock' if policy == 'lock' else ''}": SessionManager(
                AppSession,
                frontend=frontend,
                backend=store_for(store),
                concurrency=policy,  # type: ignore[arg-type]
            )
            for store in ("memory", "redis", "http")
            for policy in ("merge", "lock")
        }
        headers: dict[str, Any] = {"bare": []}
        for name, manager in managers.items():
            apps[name] = build_app(manager)
            login = await call(apps[name], "/login", "POST")
            headers[name] = cookie_header(login.cookie() or "")
        routes = [("/read", "GET"), ("/read-only", "GET"), ("/incr", "POST")]
        results: dict[tuple[str, str], list[float]] = {}
        for name, app in apps.items():  # warm up
            for path, method in routes:
                await per_request_us(app, path, method, headers[name], 200)
        for _ in range(repeats):
            for path, method in routes:
                for name, app in apps.items():
                    value = await per_request_us(app, path, method, headers[name], requests)
                    results.setdefault((name, path), []).append(value)
        print(f"{'route':10} {'store':11} {'µs/request':>11} {'over bare':>10}  round trips")
        for path, method in routes:
            bare = statistics.median(results[("bare", path)])
            for name, app in apps.items():
                median = statistics.median(results[(name, path)])
                trips = ""
                if name.startswith("redis"):

                    async def one(app: Any = app, path: str = path, method: str = method) -> None:
                        await call(app, path, method, headers=headers["redis"])

                    trips = " + ".join(await round_trips(server.url, one)) or "-"
                over = "" if name == "bare" else f"{median - bare:+.1f}"
                print(f"{path:10} {name:11} {median:11.1f} {over:>10}  {trips}")
        for manager in managers.values():
            await manager.aclose()
    finally:
        service.__exit__(None, None, None)
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.repeats))
