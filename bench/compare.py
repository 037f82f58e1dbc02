"""fastapi-session-deps side by side with the session libraries FastAPI users pick instead.

One run, the same four routes for every library (/noop, /read, /incr, /login), and:

1. µs per request in process (raw ASGI calls, no network), the fastest of interleaved
   rounds, and the ratio to bare FastAPI;
2. Redis round trips of /read and /incr (counted with MONITOR);
3. lost updates out of 200 concurrent increments (uvicorn on loopback, 20 at a time);
4. the status codes for malformed cookies, and for a stopped Redis;
5. requests/s and p99 latency under uvicorn with wrk on loopback (bounded in time);
6. where the time goes: a session read a layer at a time, and the Redis floor;
7. bytes per stored session, on memory and on Redis, against starsessions.

Run it with ``bash bench/run.sh`` (``--quick`` for a run under two minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.store_size import store_bytes_per_record  # noqa: E402
from tests.helpers import http_scope, uvicorn_server  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402

ROUTES = [("/noop", "GET"), ("/read", "GET"), ("/incr", "POST"), ("/login", "POST")]


@dataclass
class Library:
    name: str
    module: str
    redis: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, redis_url: str) -> dict[str, str]:
        return {**self.env, **({"BENCH_REDIS_URL": redis_url} if self.redis else {})}


LIBRARIES = [
    Library("bare FastAPI", "bare"),
    Library("fastapi-session-deps, memory", "ours"),
    Library("fastapi-session-deps, Redis", "ours", redis=True),
    Library(
        "fastapi-session-deps, Redis, without hiredis",
        "ours",
        redis=True,
        env={"BENCH_PARSER": "python"},
    ),
    Library("Starlette SessionMiddleware (cookie)", "starlette_cookie"),
    Library("starsessions, memory", "starsessions_app"),
    Library("starsessions, Redis", "starsessions_app", redis=True),
    Library("fastapi-sessions, memory", "fastapi_sessions_app"),
]

#: The peers' log-ins measured beside the floor of a log-in, in the same rounds.
LOGIN_PEERS = ("Starlette SessionMiddleware (cookie)", "starsessions, memory")

MALFORMED = [
    "",
    "garbage",
    "null",
    "a" * 5000,
    "%%%%",
    "é-non-ascii",
    '"quoted"',
    "=",
    "a.b.c",
    "...",
    "eyJhIjogMX0=",  # base64 of JSON
    '{"a": 1}',
    "\\x00\\x01",
    "0" * 64,
    "x" * 43 + ".AAAA." + "y" * 43,
    "00000000-0000-0000-0000-000000000000",
    "Zm9v.YmFy.YmF6",
]


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build(library: Library, redis_url: str) -> Any:
    module = importlib.import_module(f"bench.apps.{library.module}")
    with environment(library.environment(redis_url)):
        return module.create_app()


def scope(method: str, path: str, cookie: str | None) -> dict[str, Any]:
    headers = [(b"host", b"bench")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return http_scope(path, method, headers)


async def asgi(app: Any, method: str, path: str, cookie: str | None) -> tuple[int, list[str]]:
    """One request over raw ASGI: its status and Set-Cookie headers (500 if it raised)."""
    status = 0
    cookies: list[str] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            cookies.extend(
                v.decode("latin-1") for k, v in message.get("headers", []) if k == b"set-cookie"
            )

    try:
        await app(scope(method, path, cookie), receive, send)
    except Exception:  # an exception out of the app is what a server turns into a 500
        return 500, cookies
    return status, cookies


async def login_cookie(app: Any) -> str | None:
    _, cookies = await asgi(app, "POST", "/login", None)
    return cookies[-1].split(";", 1)[0] if cookies else None


async def time_route(app: Any, method: str, path: str, cookie: str | None, count: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    if path == "/login":
        cookie = None
    started = time.perf_counter()
    for _ in range(count):
        await app(scope(method, path, cookie), receive, send)
    return (time.perf_counter() - started) / count * 1e6


# -- the parts of the report ---------------------------------------------------------------


async def in_process(redis_url: str, repeats: int, count: int) -> dict[str, dict[str, float]]:
    apps = {lib.name: build(lib, redis_url) for lib in LIBRARIES}
    return await interleaved(apps, repeats, count, estimate=min)


async def interleaved(
    apps: dict[str, Any],
    repeats: int,
    count: int,
    estimate: Callable[[list[float]], float] = statistics.median,
) -> dict[str, dict[str, float]]:
    """µs per request of each app on each route: the median (or ``estimate``) of
    ``repeats`` rounds of ``count`` requests, every app in every round, after a warm-up."""
    cookies = {name: await login_cookie(app) for name, app in apps.items()}
    samples: dict[tuple[str, str], list[float]] = {}
    for name, app in apps.items():  # warm up: connections, scripts, caches
        for path, method in ROUTES:
            await time_route(app, method, path, cookies[name], max(50, count // 10))
    for _ in range(repeats):  # interleaved: every library in every repetition
        for path, method in ROUTES:
            for name, app in apps.items():
                value = await time_route(app, method, path, cookies[name], count)
                samples.setdefault((name, path), []).append(value)
    return {name: {path: estimate(samples[(name, path)]) for path, _ in ROUTES} for name in apps}


async def raw_round_trip(redis_url: str, count: int) -> float:
    """µs of one bare redis-py HGETALL on this machine: the floor of any Redis read."""
    client = aioredis.Redis.from_url(redis_url)
    await client.hset("bench:raw", mapping={"a": "1"})
    for _ in range(100):
        await client.hgetall("bench:raw")
    started = time.perf_counter()
    for _ in range(count):
        await client.hgetall("bench:raw")
    elapsed = (time.perf_counter() - started) / count * 1e6
    await client.aclose()
    return elapsed


async def redis_trips(app: Any, redis_url: str, routes: list[tuple[str, str]]) -> dict[str, int]:
    """Redis commands each route sends (with MONITOR; commands run inside scripts are not
    round trips, so they are not counted). ``/login`` starts without a cookie."""
    cookie = await login_cookie(app)
    for path, method in routes:
        await asgi(app, method, path, None if path == "/login" else cookie)  # warm
    watcher, marker = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    await marker.ping()
    result = {}
    for path, method in routes:
        async with watcher.monitor() as monitor:
            await asgi(app, method, path, None if path == "/login" else cookie)
            await marker.echo("end-of-request")
            trips = 0
            while "end-of-request" not in (seen := await monitor.next_command())["command"]:
                trips += seen["client_type"] != "lua"
        result[path] = trips
    await watcher.aclose()
    await marker.aclose()
    return result


async def round_trips(redis_url: str) -> dict[str, dict[str, int]]:
    return {
        lib.name: await redis_trips(build(lib, redis_url), redis_url, ROUTES[1:3])
        for lib in LIBRARIES
        if lib.redis
    }


async def malformed_cookies(redis_url: str) -> dict[str, Counter[int]]:
    result: dict[str, Counter[int]] = {}
    for lib in LIBRARIES[1:]:
        app = build(lib, redis_url)
        name = ((await login_cookie(app)) or "session=").split("=", 1)[0]
        result[lib.name] = Counter(
            [(await asgi(app, "GET", "/read", f"{name}={value}"))[0] for value in MALFORMED]
        )
    return result


async def stopped_redis(server: RedisServer) -> dict[str, dict[str, int]]:
    apps = {lib.name: build(lib, server.url) for lib in LIBRARIES if lib.redis}
    cookies = {name: await login_cookie(app) for name, app in apps.items()}
    server.stop()
    result = {}
    for name, app in apps.items():
        with anyio.move_on_after(30):
            result[name] = {
                path: (await asgi(app, method, path, cookies[name]))[0]
                for path, method in ROUTES[1:3]
            }
    server.start()
    return result


@contextmanager
def uvicorn(library: Library, redis_url: str) -> Iterator[str]:
    env = {**library.environment(redis_url), "PYTHONPATH": str(ROOT)}
    with uvicorn_server(
        f"bench.apps.{library.module}:create_app", env=env, factory=True, ready_path="/noop"
    ) as base:
        yield base


async def lost_updates(library: Library, base: str, requests: int = 200) -> int:
    limit = anyio.Semaphore(20)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.post("/login")

        async def one() -> None:
            async with limit:
                await client.post("/incr")

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for _ in range(requests):
                    group.start_soon(one)
        counter = (await client.get("/read")).json().get("counter", 0)
    return requests - int(counter)


def wrk(base: str, method: str, path: str, cookie: str | None, seconds: int) -> tuple[float, str]:
    command = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
    if cookie is not None and path != "/login":
        command += ["-H", f"Cookie: {cookie}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "{method}"\n')
    command += ["-s", script.name, base + path]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout  # noqa: S603
    os.unlink(script.name)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    return (float(rate.group(1)) if rate else 0.0), (p99.group(1) if p99 else "?")


async def under_uvicorn(
    redis_url: str, seconds: int
) -> tuple[dict[str, int], dict[str, dict[str, tuple[float, str]]]]:
    losses: dict[str, int] = {}
    load: dict[str, dict[str, tuple[float, str]]] = {}
    for lib in LIBRARIES:
        with uvicorn(lib, redis_url) as base:
            if lib.module != "bare":
                losses[lib.name] = await lost_updates(lib, base)
            if seconds and shutil.which("wrk"):
                async with httpx.AsyncClient() as client:
                    login = await client.post(base + "/login", timeout=5)
                cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items()) or None
                load[lib.name] = {
                    path: wrk(base, method, path, cookie, seconds) for path, method in ROUTES
                }
    return losses, load


async def where_the_time_goes(redis_url: str, repeats: int, count: int) -> dict[str, float]:
    """µs per request of each layer of a session read, and of the Redis floor.

    Layers (memory store, in process): bare FastAPI; + the session middleware, route not
    using the session; + a trivial async dependency that is a security scheme (FastAPI's
    price for Depends); + the session itself (an unchanged read, or a new session's
    log-in); beside the dependency, a route taking the `Request` (the peers' way to their
    sessions). The floor of a log-in: the secure defaults' own work, inline
    (`bench/apps/login_floor.py`). The floor of a Redis read: a bare FastAPI route
    awaiting one HGETALL, bare, inside asyncio.timeout, and inside the bound RedisBackend
    puts on every call.
    """
    bare = build(LIBRARIES[0], redis_url)
    layers = importlib.import_module("bench.apps.layers").create_app()
    login_floor = importlib.import_module("bench.apps.login_floor").create_app()
    peers = {lib.name: build(lib, redis_url) for lib in LIBRARIES if lib.name in LOGIN_PEERS}
    with environment({"BENCH_REDIS_URL": redis_url}):
        floor = importlib.import_module("bench.apps.floor").create_app()
    client = aioredis.Redis.from_url(redis_url)
    await client.hset("bench:floor", mapping={"user_id": "1", "counter": "0"})
    await client.aclose()
    cookie = await login_cookie(layers)
    cases = {
        "bare FastAPI": (bare, "GET", "/read"),
        "+ session middleware (route not using it)": (layers, "GET", "/noop"),
        "+ an async dependency (FastAPI's price)": (layers, "GET", "/dependency"),
        "or + a `Request` parameter (the peers' routes)": (layers, "GET", "/request"),
        "+ the session read (load, unchanged commit)": (layers, "GET", "/read"),
        "bare FastAPI, new session's log-in route": (bare, "POST", "/login"),
        "session log-in (new id, write, signed cookie)": (layers, "POST", "/login"),
        "floor: the defaults' own work, inline": (login_floor, "POST", "/login"),
        **{f"log-in with {name}": (app, "POST", "/login") for name, app in peers.items()},
        "floor: bare route awaiting one HGETALL": (floor, "GET", "/hgetall"),
        "floor, inside asyncio.timeout": (floor, "GET", "/hgetall-timeout"),
        "floor, inside RedisBackend's bound": (floor, "GET", "/hgetall-bounded"),
    }
    samples: dict[str, list[float]] = {}
    for app, method, path in cases.values():
        await time_route(app, method, path, cookie, max(50, count // 10))
    for _ in range(repeats):
        for name, (app, method, path) in cases.items():
            samples.setdefault(name, []).append(await time_route(app, method, path, cookie, count))
    return {name: min(values) for name, values in samples.items()}


async def memory_per_session(redis_url: str, sessions: int) -> dict[str, float]:
    """Bytes per stored session (a log-in and one increment), by library and store."""
    result: dict[str, float] = {}
    client = aioredis.Redis.from_url(redis_url)
    for lib in LIBRARIES:
        if lib.module not in ("ours", "starsessions_app") or lib.env:
            continue
        await client.flushdb()
        app = build(lib, redis_url)
        for _ in range(sessions):
            cookie = await login_cookie(app)
            await asgi(app, "POST", "/incr", cookie)
        if lib.redis:
            sizes = [await client.memory_usage(key) async for key in client.scan_iter("*")]
            result[lib.name] = statistics.median(size for size in sizes if size)
        else:
            result[lib.name] = _memory_store_bytes(app)
    await client.flushdb()
    await client.aclose()
    return result


def _memory_store_bytes(app: Any) -> float:
    """Bytes a memory store holds per session: its objects' sizes, container included."""
    options = app.user_middleware[0]
    store = getattr(options.cls, "__self__", None)
    if store is not None:  # fastapi-session-deps: the manager's MemoryBackend
        return store_bytes_per_record(store.backend)
    data = options.kwargs["store"].data  # starsessions' InMemoryStore: id -> bytes
    total = sys.getsizeof(data) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in data.items())
    return total / len(data)


# -- the report ----------------------------------------------------------------------------


def versions() -> str:
    from importlib.metadata import version

    names = [
        "fastapi",
        "starlette",
        "pydantic",
        "redis",
        "starsessions",
        "fastapi-sessions",
        "uvicorn",
    ]
    binary = shutil.which("redis-server") or "redis-server"
    redis_server = subprocess.run(  # noqa: S603 - the machine's redis-server
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2]
    return ", ".join(
        [f"Python {platform.python_version()}", f"redis-server {redis_server.split('=')[1]}"]
        + [f"{name} {version(name)}" for name in names]
    )


@dataclass
class Results:
    timing: dict[str, dict[str, float]]
    layers: dict[str, float]
    per_session: dict[str, float]
    trips: dict[str, dict[str, int]]
    raw_trip: float
    malformed: dict[str, Counter[int]]
    stopped: dict[str, dict[str, int]]
    losses: dict[str, int]
    load: dict[str, dict[str, tuple[float, str]]]


def report(results: Results, settings: str) -> str:
    timing, trips, raw_trip = results.timing, results.trips, results.raw_trip
    malformed, stopped, losses, load = (
        results.malformed,
        results.stopped,
        results.losses,
        results.load,
    )
    lines = report_header(settings, versions()) + timing_table(timing, "library", "fastest round")
    lines += layer_table(results.layers, timing)
    lines += [
        "",
        "### Bytes per stored session (a log-in and one increment)",
        "",
        "Memory stores: the Python objects the store holds per session, its dict included.",
        "Redis: `MEMORY USAGE` of a session's key (median).",
        "",
        "| library | bytes |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {size:,.0f} |" for name, size in results.per_session.items()]
    lines += [
        "",
        "### Redis round trips per request",
        "",
        f"One bare redis-py `HGETALL` round trip costs {raw_trip:.0f} µs on this machine.",
        "",
        "| library | /read | /incr |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {row['/read']} | {row['/incr']} |" for name, row in trips.items()]
    lines += [
        "",
        "### Lost updates out of 200 concurrent increments (uvicorn, 20 at a time)",
        "",
        "| library | lost |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {lost} |" for name, lost in losses.items()]
    lines += [
        "",
        f"### Status codes for {len(MALFORMED)} malformed cookies on /read",
        "",
        "| library | statuses |",
        "| --- | --- |",
    ]
    lines += [
        f"| {name} | " + ", ".join(f"{code} x{n}" for code, n in sorted(counts.items())) + " |"
        for name, counts in malformed.items()
    ]
    lines += [
        "",
        "### Status codes with Redis stopped",
        "",
        "| library | /read | /incr |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {row['/read']} | {row['/incr']} |" for name, row in stopped.items()]
    if load:
        lines += [
            "",
            "### Under uvicorn (1 worker) with wrk on loopback: requests/s, p99",
            "",
            "| library | " + " | ".join(path for path, _ in ROUTES) + " |",
            "| --- |" + " ---: |" * len(ROUTES),
        ]
        for name, row in load.items():
            lines.append(
                f"| {name} | "
                + " | ".join(f"{row[p][0]:.0f}, {row[p][1]}" for p, _ in ROUTES)
                + " |"
            )
    return "\n".join(lines) + "\n"


def report_header(settings: str, versions_text: str) -> list[str]:
    """The machine, the versions and the settings of a run."""
    return [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}.",
        f"Versions: {versions_text}.",
        f"Settings: {settings}.",
    ]


def timing_table(
    timing: dict[str, dict[str, float]], first: str, estimate: str = "median"
) -> list[str]:
    """µs per request of each row of ``timing``, with the difference and the ratio to the
    row of bare FastAPI."""
    lines = [
        "",
        f"### µs per request in process ({estimate}), and over bare FastAPI",
        "",
        f"| {first} | " + " | ".join(path for path, _ in ROUTES) + " |",
        "| --- |" + " ---: |" * len(ROUTES),
    ]
    bare = timing["bare FastAPI"]
    for name, row in timing.items():
        cells = []
        for path, _ in ROUTES:
            over = (
                ""
                if name == "bare FastAPI"
                else f" ({row[path] - bare[path]:+.1f}, x{row[path] / bare[path]:.2f})"
            )
            cells.append(f"{row[path]:.1f}{over}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


#: Each row of "where the time goes" and the row it adds to.
LAYER_BASES = {
    "+ session middleware (route not using it)": "bare FastAPI",
    "+ an async dependency (FastAPI's price)": "+ session middleware (route not using it)",
    "or + a `Request` parameter (the peers' routes)": "+ session middleware (route not using it)",
    "+ the session read (load, unchanged commit)": "+ an async dependency (FastAPI's price)",
    "session log-in (new id, write, signed cookie)": "bare FastAPI, new session's log-in route",
    "floor: the defaults' own work, inline": "bare FastAPI, new session's log-in route",
    **{f"log-in with {name}": "bare FastAPI, new session's log-in route" for name in LOGIN_PEERS},
    "floor: bare route awaiting one HGETALL": "bare FastAPI",
    "floor, inside asyncio.timeout": "floor: bare route awaiting one HGETALL",
    "floor, inside RedisBackend's bound": "floor: bare route awaiting one HGETALL",
}


def layer_table(layers: dict[str, float], timing: dict[str, dict[str, float]]) -> list[str]:
    """The "where the time goes" section: each layer's µs and what it adds."""
    lines = [
        "",
        "### Where the time goes",
        "",
        'In process, µs per request (fastest round); "added" is over the row named in',
        "`LAYER_BASES`: a layer at a time on the memory store (and, beside the dependency, a",
        "route taking the `Request`, as the peers' routes do); the floor of a log-in: what a",
        "new session needs under this library's defaults (a new id, its hash as the store",
        "key, the fields as JSON, a signed cookie, `Vary`, `Cache-Control: private,",
        "no-store`) done inline behind a `Depends()`, with none of the library's machinery",
        "(`bench/apps/login_floor.py`), and the peers' log-ins in the same rounds; then the",
        "floor of any Redis-backed read: a bare FastAPI route that awaits one `HGETALL` (on a",
        "client as `RedisBackend.from_url` builds it), bare, inside `asyncio.timeout`, and",
        "inside the bound `RedisBackend` puts on every call (one event-loop timer for all",
        "calls).",
        "",
        "| layer | µs | added |",
        "| --- | ---: | ---: |",
    ]
    for name, value in layers.items():
        base = LAYER_BASES.get(name)
        added = "" if base is None else f"{value - layers[base]:+.1f}"
        lines.append(f"| {name} | {value:.1f} | {added} |")
    ours = timing["fastapi-session-deps, Redis"]["/read"]
    floor = layers["floor: bare route awaiting one HGETALL"]
    lines += [
        "",
        f"Our Redis `/read` in the same run: {ours:.1f} µs, {ours - floor:+.1f} over the floor.",
    ]
    return lines


async def main(options: argparse.Namespace) -> None:
    repeats, count, seconds = (5, 1000, 1) if options.quick else (21, 1000, 5)
    if options.no_load:
        seconds = 0
    started = time.monotonic()
    server = RedisServer(Path(tempfile.mkdtemp()) / "redis").start()
    try:
        timing = await in_process(server.url, repeats, count)
        layers = await where_the_time_goes(server.url, repeats, count)
        per_session = await memory_per_session(server.url, 200 if options.quick else 1000)
        trips = await round_trips(server.url)
        raw_trip = min([await raw_round_trip(server.url, count) for _ in range(3)])
        malformed = await malformed_cookies(server.url)
        losses, load = await under_uvicorn(server.url, seconds)
        stopped = await stopped_redis(server)
    finally:
        server.stop()
    settings = (
        f"{'quick' if options.quick else 'full'} run: the fastest of {repeats} interleaved "
        f"rounds of {count} requests per route; wrk {seconds} s per route, 16 connections; "
        f"took {time.monotonic() - started:.0f} s"
    )
    results = Results(
        timing, layers, per_session, trips, raw_trip, malformed, stopped, losses, load
    )
    await publish(report(results, settings), options.output)


async def publish(text: str, output: str | None) -> None:
    """Print a report, and write it to ``output`` too if given."""
    print(text)
    if output:
        await anyio.Path(output).write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run under two minutes")
    parser.add_argument("--no-load", action="store_true", help="skip the wrk part")
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    asyncio.run(main(parser.parse_args()))
