"""What loading ``request.session`` up front costs a request that never touches it.

`SessionMiddleware` loads the session as a request starts when it carries a session cookie
(``autoload=True``, the default), so that async code can use ``request.session`` directly.
This measures, in process, the µs per request of a route that does not use the session,
sent with a valid session cookie, with and without autoload, on the memory store and on a
real local Redis, beside the same app with Starlette's own (cookie-only) middleware and
with no session middleware at all, and with autoload on but the route among
``lazy_paths``. Also the Redis round trips of each (MONITOR).

    .venv/bin/python bench/autoload_cost.py [--requests 3000] [--repeats 5]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.redis_requests import per_request_us, round_trips
from fastapi_session_deps import MemoryBackend, RedisBackend, SessionMiddleware
from tests.helpers import SECRET, call, cookie_header
from tests.redis_servers import RedisServer


async def untouched(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def login(request: Request) -> JSONResponse:
    request.session["user"] = "ada"
    return JSONResponse({"ok": True})


def app(*middleware: Middleware) -> Starlette:
    return Starlette(
        routes=[Route("/untouched", untouched), Route("/login", login, methods=["POST"])],
        middleware=list(middleware),
    )


async def main(requests: int, repeats: int) -> None:
    server = RedisServer(Path(tempfile.mkdtemp()) / "redis").start()
    try:
        apps: dict[str, Any] = {
            "no session middleware": app(),
            "Starlette (cookie)": app(Middleware(StarletteSessionMiddleware, secret_key=SECRET)),
        }
        for store in ("memory", "redis"):
            for autoload, lazy in ((True, []), (False, []), (True, ["/untouched"])):
                backend = (
                    MemoryBackend() if store == "memory" else RedisBackend.from_url(server.url)
                )
                name = f"{store}, autoload={autoload}" + (", lazy_paths" if lazy else "")
                apps[name] = app(
                    Middleware(
                        SessionMiddleware,
                        secret_key=SECRET,
                        backend=backend,
                        autoload=autoload,
                        lazy_paths=lazy,
                    )
                )
        headers: dict[str, Any] = {}
        for name, each in apps.items():
            if name == "no session middleware":
                continue
            response = await call(each, "/login", "POST")
            headers[name] = cookie_header(response.cookie() or "")
        # The bare app gets a cookie header too, so every request has the same shape.
        headers["no session middleware"] = headers["memory, autoload=True"]
        for name, each in apps.items():
            await per_request_us(each, "/untouched", "GET", headers[name], 300)  # warm up
        results: dict[str, list[float]] = {}
        for _ in range(repeats):
            for name, each in apps.items():
                value = await per_request_us(each, "/untouched", "GET", headers[name], requests)
                results.setdefault(name, []).append(value)
        floor = statistics.median(results["no session middleware"])
        print(
            f"{'app (route never touches the session)':38} {'µs/request':>11} {'over bare':>10}"
            "  Redis round trips"
        )
        for name, each in apps.items():
            median = statistics.median(results[name])
            trips = ""
            if name.startswith("redis"):

                async def one(each: Any = each, name: str = name) -> None:
                    await call(each, "/untouched", headers=headers[name])

                trips = " + ".join(await round_trips(server.url, one)) or "none"
            print(f"{name:38} {median:11.1f} {median - floor:+10.1f}  {trips}")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.repeats))
