"""What each optional feature of fastapi-session-deps costs per request, in one run.

1. Encryption at rest (`EncryptedBackend`, AES-256-GCM over each stored value) on the
   memory store, on Redis and on SQLite, beside the same store without it: µs per request
   in process (raw ASGI calls), with the difference to bare FastAPI and the ratio.
2. The HTML app features, CSRF protection and flash messages, on memory and on Redis: a
   page that renders a form, and a form posted followed by the page after it, beside the
   same app without them (``bench/apps/html_forms.py``).
3. OpenTelemetry on memory and on Redis: off (the default: the store called directly),
   on with the API alone (no SDK: every call a no-op), and on with the SDK recording
   metrics and spans.

Each figure is the fastest of many short interleaved rounds (every variant in every
round): on a shared machine whose bursts of noise move a median by a third from one run to
the next, the fastest round is the estimate that repeats, and what a feature adds to it is
its own cost.

Run it with ``bash bench/run.sh features`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare import (  # noqa: E402
    environment,
    interleaved,
    publish,
    report_header,
    timing_table,
)
from bench.stores import Store, build, make_table, versions  # noqa: E402
from fastapi_session_deps.backends.encrypted import new_key  # noqa: E402
from tests.helpers import http_scope  # noqa: E402
from tests.redis_servers import RedisServer  # noqa: E402

#: What a browser sends with each request of the HTML app (same-origin, a form's body).
BROWSER = [(b"host", b"bench"), (b"sec-fetch-site", b"same-origin")]
FORM = (b"content-type", b"application/x-www-form-urlencoded")
#: The HTML app's variants, by the switches they turn on.
HTML_VARIANTS = {
    "without them": {},
    "+ CSRF": {"BENCH_CSRF": "1"},
    "+ flash": {"BENCH_FLASH": "1"},
    "+ CSRF + flash": {"BENCH_CSRF": "1", "BENCH_FLASH": "1"},
}
#: OpenTelemetry's variants (``BENCH_TELEMETRY`` of ``bench/apps/ours.py``).
TELEMETRY = {"telemetry off": "", "on, otel API, no SDK": "api", "on, otel SDK": "sdk"}
#: The HTML app's measurements: the requests each one makes, in order.
HTML_STEPS = {
    "GET /noop (no session)": [("GET", "/noop")],
    "GET page with a form": [("GET", "/page")],
    "POST form + GET page": [("POST", "/add"), ("GET", "/page")],
}


class HTMLClient:
    """One browser of the HTML app over raw ASGI: its cookie, and its page's token."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = list(BROWSER)
        self.body = b""

    async def call(self, method: str, path: str) -> tuple[int, list[bytes], bytes]:
        scope = http_scope(path, method, self.headers if method == "GET" else self.posted)
        body = self.body if method == "POST" else b""
        status, cookies, chunks = 0, [], []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                cookies.extend(v for k, v in message.get("headers", []) if k == b"set-cookie")
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, cookies, b"".join(chunks)

    async def start(self) -> None:
        self.posted = [*self.headers, FORM]
        _, cookies, body = await self.call("GET", "/start")
        cookie = cookies[-1].split(b";", 1)[0]
        token = json.loads(body)
        self.headers.append((b"cookie", cookie))
        self.posted = [*self.headers, FORM]
        self.body = f"item=scone&csrf_token={token}".encode() if token else b"item=scone"
        for method, path in (("GET", "/page"), ("POST", "/add"), ("GET", "/page")):
            status, _, _ = await self.call(method, path)
            if status >= 400:
                raise RuntimeError(f"{method} {path} answered {status}")

    async def time(self, steps: list[tuple[str, str]], count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            for method, path in steps:
                await self.call(method, path)
        return (time.perf_counter() - started) / count * 1e6


async def html_timing(redis_url: str, repeats: int, count: int) -> dict[str, dict[str, float]]:
    """µs per measurement of each variant of the HTML app, on memory and on Redis."""
    from bench.apps import html_forms

    clients = {}
    for store, env in (("memory", {}), ("Redis", {"BENCH_REDIS_URL": redis_url})):
        for variant, switches in HTML_VARIANTS.items():
            with environment({**env, **switches}):
                client = HTMLClient(html_forms.create_app())
            await client.start()
            clients[f"{store}, {variant}"] = client
    samples: dict[tuple[str, str], list[float]] = {}
    for client in clients.values():  # warm up
        for steps in HTML_STEPS.values():
            await client.time(steps, max(50, count // 10))
    for _ in range(repeats):
        for step, steps in HTML_STEPS.items():
            for name, client in clients.items():
                samples.setdefault((name, step), []).append(await client.time(steps, count))
    return {name: {step: min(samples[(name, step)]) for step in HTML_STEPS} for name in clients}


def html_table(timing: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "",
        "### CSRF and flash messages: µs per page or form (fastest round), and over the app"
        " without them",
        "",
        "| app | " + " | ".join(HTML_STEPS) + " |",
        "| --- |" + " ---: |" * len(HTML_STEPS),
    ]
    for name, row in timing.items():
        base = timing[name.split(", ", 1)[0] + ", without them"]
        cells = [
            f"{row[step]:.1f}" + ("" if base is row else f" ({row[step] - base[step]:+.1f})")
            for step in HTML_STEPS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


async def main(options: argparse.Namespace) -> None:
    repeats, count = (5, 100) if options.quick else (25, 200)
    started = time.monotonic()
    key = {"BENCH_ENCRYPTION_KEY": new_key()}
    with tempfile.TemporaryDirectory() as directory:
        redis = RedisServer(Path(directory) / "redis").start()
        try:
            sqlite = {"BENCH_SQL_URL": f"sqlite+aiosqlite:///{directory}/sessions.db"}
            await make_table(sqlite["BENCH_SQL_URL"])
            redis_env = {"BENCH_REDIS_URL": redis.url}
            stores = [
                Store("bare FastAPI", "bare"),
                Store("memory"),
                Store("memory, encrypted", env=key),
                Store("Redis", env=redis_env),
                Store("Redis, encrypted", env={**redis_env, **key}),
                Store("SQLite", env=sqlite),
                Store("SQLite, encrypted", env={**sqlite, **key}),
            ]
            apps = {s.name: build(s) for s in stores}
            timing = await interleaved(apps, repeats, count, estimate=min)
            html = await html_timing(redis.url, repeats, count)
            traced = [
                Store(f"{store}, {label}", env={**env, "BENCH_TELEMETRY": kind})
                for store, env in (("memory", {}), ("Redis", redis_env))
                for label, kind in TELEMETRY.items()
            ]
            telemetry = await interleaved(
                {"bare FastAPI": build(stores[0]), **{s.name: build(s) for s in traced}},
                repeats,
                count,
                estimate=min,
            )
        finally:
            redis.stop()
    settings = (
        f"{'quick' if options.quick else 'full'} run: the fastest of {repeats} interleaved "
        f"rounds of {count} requests per route; took {time.monotonic() - started:.0f} s"
    )
    lines = report_header(settings, versions()) + timing_table(timing, "store", "fastest round")
    lines += [
        "",
        "Encryption seals each changed value on a write and opens every value on a read",
        "(AES-256-GCM, `cryptography`); /noop touches no session and pays nothing.",
    ]
    lines += html_table(html)
    lines += [
        "",
        "The page renders the token in its form (a fresh mask each time: no store write once",
        "the session has its secret); the form posts it in its body, which the check reads and",
        "compares, after the origin check (`Sec-Fetch-Site: same-origin`). With flash, the",
        "handler adds a message that the page after it shows and clears: the page then writes",
        "once more. CSRF on /noop is the dependency returning at once for a safe method.",
    ]
    table = timing_table(telemetry, "store", "fastest round")
    lines += ["", "### OpenTelemetry: µs per request in process (fastest round)", *table[2:]]
    lines += [
        "",
        "Telemetry off (the default) calls the store directly, as in every other table",
        "here. On with the API alone, each store call opens a no-op span and records to",
        "no-op instruments; with the SDK they are recorded (metrics read in memory, spans",
        "batched to an exporter that drops them).",
    ]
    await publish("\n".join(lines) + "\n", options.output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    asyncio.run(main(parser.parse_args()))
